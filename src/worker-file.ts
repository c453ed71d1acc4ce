/**
 * The compiled file of a worker thread, given beside the module that starts it. Run from the
 * TypeScript sources (vitest) there is none: callers then do the work in process, or take the
 * copy in dist/.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function compiledWorkerFile(file: URL): URL | undefined {
  return existsSync(fileURLToPath(file)) ? file : undefined;
}
