/**
 * The process settings `leakwatch serve` is meant to run with, which only its environment or node's
 * command line can give it (README, "Memory"): `npm start` and the Docker image set them, the
 * server's start-up log names the ones missing, and the bench starts its server with them.
 */

/**
 * glibc's malloc: with its mmap threshold left adaptive, multi-MB request buffers are carved from
 * the heap once the first is freed, and their holes stay resident; with an arena per thread (up to
 * eight per core), the decoding, checkpoint and libuv threads each keep freed memory of their own.
 */
const MALLOC_SETTINGS = [
  { name: 'MALLOC_MMAP_THRESHOLD_', value: '131072', tunable: 'glibc.malloc.mmap_threshold' },
  { name: 'MALLOC_ARENA_MAX', value: '2', tunable: 'glibc.malloc.arena_max' },
] as const;

/** The environment those malloc settings are, by name. */
export const SERVE_MALLOC_ENV: Readonly<Record<string, string>> = Object.fromEntries(MALLOC_SETTINGS.map(({ name, value }) => [name, value]));

/**
 * The glibc malloc settings this process runs without, as `NAME=value` to set (set as a variable
 * or as a GLIBC_TUNABLES entry counts as set). Empty off glibc.
 */
export function missingMallocSettings(env: NodeJS.ProcessEnv = process.env): string[] {
  // Node's diagnostic report names the glibc it runs on; musl and other systems have no such field.
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  if (typeof header?.glibcVersionRuntime !== 'string') return [];
  const tunables = env['GLIBC_TUNABLES'] ?? '';
  return MALLOC_SETTINGS.filter(({ name, tunable }) => env[name] === undefined && !tunables.includes(`${tunable}=`)).map(({ name, value }) => `${name}=${value}`);
}

/** The young generation `leakwatch serve` is meant to run with: 2 x 8 MiB instead of V8's 2 x 16 on 64-bit. */
export const SERVE_SEMI_SPACE_FLAG = '--max-semi-space-size=8';

/**
 * The node flag this process runs without, or undefined: V8 sizes the young generation when the
 * process starts, so only node's command line or NODE_OPTIONS can set it. At its default it takes
 * ~13 MiB more of the peak RSS at full ingest rate (README, "Memory").
 */
export function missingSemiSpaceFlag(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const given = [...execArgv, ...(env['NODE_OPTIONS'] ?? '').split(/\s+/)].some((flag) => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(flag));
  return given ? undefined : SERVE_SEMI_SPACE_FLAG;
}
