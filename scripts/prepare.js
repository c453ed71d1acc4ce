// Runs on `npm ci`/`npm install` so that `npx leakwatch` works straight after installing.
// A production install (`npm ci --omit=dev`, as in the Dockerfile) has no TypeScript and ships a
// prebuilt dist/, so the build is skipped there instead of failing the install.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  console.log('leakwatch: typescript is not installed (production install); using the prebuilt dist/');
  process.exit(0);
}
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
process.exit(result.status ?? 1);
