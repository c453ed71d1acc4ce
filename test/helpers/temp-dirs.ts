import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** Makes temp folders (`leakwatch-<name>-…`) that are removed after the test file's tests. */
export function tempDirs(): (name: string) => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  return (name) => {
    const dir = mkdtempSync(join(tmpdir(), `leakwatch-${name}-`));
    dirs.push(dir);
    return dir;
  };
}
