import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHIPPED_RULES = fileURLToPath(new URL('../../rules/', import.meta.url));

export interface GrouperTimings {
  silence?: string;
  expire_after?: string;
  reorder_window?: string;
}

/**
 * A copy of the shipped rules whose grouper waits differently (a test cannot wait the 30 s a
 * production stream waits for a shipper's retry, or needs a record that never closes by itself).
 * Returns the folder and a function that removes it.
 */
export function shippedRulesWith(timings: GrouperTimings): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-rules-'));
  cpSync(SHIPPED_RULES, dir, { recursive: true });
  const file = join(dir, 'groupers.yaml');
  let text = readFileSync(file, 'utf8');
  for (const [key, value] of Object.entries(timings)) {
    const pattern = new RegExp(`^(\\s+)${key}: \\S+$`, 'm');
    if (!pattern.test(text)) throw new Error(`groupers.yaml has no ${key}`);
    text = text.replace(pattern, `$1${key}: ${value}`);
  }
  writeFileSync(file, text);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
