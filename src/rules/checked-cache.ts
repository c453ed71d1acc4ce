/**
 * Rule files already checked (YAML parsed, JSON Schema validated), kept as plain data in a cache
 * folder under a key made of leakwatch's version, the schema and the files' names and contents.
 * `leakwatch analyze` compiles the rules from there: an unchanged folder starts without the YAML
 * parser and the schema validator, about a third of a second and 30 MB less. Anything unexpected
 * (no folder, a foreign or broken file) means the files are checked again, never an error.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_VERSION } from '../version.js';
import type { RuleSource } from './last-good.js';
import type { RawRuleFile } from './model.js';
import type { RuleProblem } from './problems.js';

const SCHEMA_URL = new URL('../../schema/leakwatch-rules.schema.json', import.meta.url);
const PREFIX = 'rules-checked-';
/** Rule sets kept; older ones are removed when a new one is written. */
const KEEP = 16;

export interface CheckedRuleFiles {
  /** Each file's data, by its path relative to the rules folder, in load order. */
  files: Array<{ path: string; data: RawRuleFile }>;
  /** Warnings found while checking them (YAML), with the file relative to the rules folder. */
  warnings: Array<Omit<RuleProblem, 'file'> & { path: string }>;
}

export async function checkedCacheKey(sources: readonly RuleSource[]): Promise<string> {
  const hash = createHash('sha256').update(PACKAGE_VERSION).update('\0');
  hash.update(await readFile(SCHEMA_URL)).update('\0');
  for (const source of sources) hash.update(source.path).update('\0').update(source.text).update('\0');
  return hash.digest('hex').slice(0, 32);
}

export async function readChecked(cacheDir: string, key: string): Promise<CheckedRuleFiles | undefined> {
  try {
    const value = JSON.parse(await readFile(path.join(cacheDir, `${PREFIX}${key}.json`), 'utf8')) as Partial<CheckedRuleFiles>;
    return Array.isArray(value.files) && Array.isArray(value.warnings) ? (value as CheckedRuleFiles) : undefined;
  } catch {
    return undefined;
  }
}

/** Written under a temporary name and renamed: a reader never sees half a file. */
export async function writeChecked(cacheDir: string, key: string, value: CheckedRuleFiles): Promise<void> {
  try {
    await mkdir(cacheDir, { recursive: true });
    const target = path.join(cacheDir, `${PREFIX}${key}.json`);
    const temporary = `${target}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify(value));
    await rename(temporary, target);
    await prune(cacheDir);
  } catch {
    // A cache that cannot be written only costs the next run its time.
  }
}

async function prune(cacheDir: string): Promise<void> {
  const names = (await readdir(cacheDir)).filter((name) => name.startsWith(PREFIX) && name.endsWith('.json'));
  if (names.length <= KEEP) return;
  const aged = await Promise.all(names.map(async (name) => ({ name, time: (await stat(path.join(cacheDir, name))).mtimeMs })));
  aged.sort((a, b) => b.time - a.time);
  for (const { name } of aged.slice(KEEP)) await rm(path.join(cacheDir, name), { force: true });
}

/** `$XDG_CACHE_HOME/leakwatch`, else `~/.cache/leakwatch`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv, home: string): string {
  const base = env.XDG_CACHE_HOME !== undefined && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(home, '.cache');
  return path.join(base, 'leakwatch');
}
