import { spawnSync } from 'node:child_process';

/**
 * Child-process tests run the real CLI (`bin/leakwatch.js` → `dist/`), so dist/ must match the
 * sources under test: build once before any test file runs.
 */
export default function buildDist(): void {
  const result = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
  // Exit 2 means "type errors, output emitted": the typecheck step reports those; the tests can run.
  if (result.status !== 0 && result.status !== 2) {
    throw new Error('tsc -p tsconfig.build.json emitted nothing; child-process tests would run stale code');
  }
}
