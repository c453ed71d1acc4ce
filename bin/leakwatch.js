#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `npm ci`/`npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (!existsSync(cli)) {
  console.error('leakwatch: dist/cli.js is missing; run `npm run build` first');
  process.exit(2);
}
const args = process.argv.slice(2);
if (args[0] === 'analyze' && !args.includes('--help') && !args.includes('-h')) {
  // analyze's threads boot while the command line and its modules load (src/analyze/shard-workers.ts).
  const { startShardWorkersEarly, threadsAsked } = await import('../dist/analyze/shard-workers.js');
  const threads = threadsAsked(args.slice(1));
  if (threads !== undefined) startShardWorkersEarly(threads);
}
const { main } = await import(cli);
process.exitCode = await main(args);
