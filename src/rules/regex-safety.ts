/**
 * Regex checks of rule files: portable syntax (no lookbehind, no backreferences, so the rules stay
 * runnable on a linear engine such as RE2) and catastrophic backtracking, found with `recheck`.
 * recheck costs milliseconds to seconds per pattern, so results are cached by pattern for the
 * life of the process (reloads only pay for new or changed patterns), and in a file across
 * restarts (SafetyVerdictCache), so that a server restarts without checking its patterns again.
 * Callers check one pattern at a time: recheck runs them in one agent process, so parallel checks
 * only share out the timeout.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compiledWorkerFile } from '../worker-file.js';
import { recheckVerdict } from './recheck-verdict.js';

/** A piece of a pattern outside any character class: an escape (`\x`) or a plain character. */
type PatternToken = { kind: 'escape' | 'char'; at: number };

/**
 * Walks a pattern's source outside character classes, skipping escapes as units: what both
 * checks below need so that `[(?<=]` or `\(?<` is not taken for a group.
 */
function* tokensOutsideClasses(source: string): Generator<PatternToken> {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if (char === '\\') {
      if (!inClass) yield { kind: 'escape', at: i };
      i += 1;
      continue;
    }
    if (inClass) {
      if (char === ']') inClass = false;
      continue;
    }
    if (char === '[') inClass = true;
    else yield { kind: 'char', at: i };
  }
}

/** The constructs that are rejected, found by a scan that understands escapes and classes. */
export function findUnportableConstruct(source: string): string | null {
  for (const { kind, at } of tokensOutsideClasses(source)) {
    if (kind === 'escape') {
      const next = source[at + 1] ?? '';
      if (/[1-9]/.test(next)) return `backreference "\\${next}"`;
      if (next === 'k' && source[at + 2] === '<') return 'named backreference "\\k<...>"';
    } else if (source.startsWith('(?<=', at)) {
      return 'lookbehind "(?<="';
    } else if (source.startsWith('(?<!', at)) {
      return 'lookbehind "(?<!"';
    }
  }
  return null;
}

/** Names of the `(?<name>...)` groups of a pattern, in order. */
export function namedGroupsOf(source: string): string[] {
  const names: string[] = [];
  for (const { kind, at } of tokensOutsideClasses(source)) {
    if (kind === 'char' && source.startsWith('(?<', at) && source[at + 3] !== '=' && source[at + 3] !== '!') {
      const end = source.indexOf('>', at);
      if (end > 0) names.push(source.slice(at + 3, end));
    }
  }
  return names;
}

export interface SafetyVerdict {
  status: 'safe' | 'vulnerable' | 'unknown';
  /** For `vulnerable`: the complexity and a shortened attack string; for `unknown`: why. */
  detail: string;
}

const verdicts = new Map<string, Promise<SafetyVerdict>>();
const MAX_CACHED_VERDICTS = 10_000;

/**
 * Where verdicts come from: a worker thread that loads recheck and ends after a few idle seconds,
 * so that the server does not carry recheck's ~30 MiB, nor its CPU on the event loop, once its
 * patterns are checked. In process when there is no compiled worker (the TypeScript sources).
 */
class RecheckThread {
  private static readonly IDLE_MS = 5000;
  private static readonly FILE = compiledWorkerFile(new URL('./regex-safety-worker.js', import.meta.url));
  private worker: Worker | undefined;
  private readonly pending = new Map<number, (verdict: SafetyVerdict) => void>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  verdict(source: string, timeoutMs: number): Promise<SafetyVerdict> {
    if (RecheckThread.FILE === undefined) return recheckVerdict(source, timeoutMs);
    const worker = this.worker ?? this.start(RecheckThread.FILE);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      worker.postMessage({ id, source, timeoutMs });
    });
  }

  private start(file: URL): Worker {
    const worker = new Worker(file);
    worker.unref();
    worker.on('message', ({ id, verdict }: { id: number; verdict: SafetyVerdict }) => {
      this.pending.get(id)?.(verdict);
      this.pending.delete(id);
      if (this.pending.size === 0) {
        this.idleTimer = setTimeout(() => void this.stop(), RecheckThread.IDLE_MS);
        this.idleTimer.unref();
      }
    });
    const fail = (why: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const resolve of this.pending.values()) resolve({ status: 'unknown', detail: `checker failed: ${why}` });
      this.pending.clear();
    };
    worker.on('error', (error) => fail(error.message));
    worker.on('exit', (code) => fail(`its thread exited with code ${code}`));
    this.worker = worker;
    return worker;
  }

  private async stop(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined || this.pending.size > 0) return;
    this.worker = undefined;
    await worker.terminate();
  }
}

const checker = new RecheckThread();

/** The checker's identity: a verdict of another recheck version or checker is not reused. */
const CHECKER = `recheck ${(createRequire(import.meta.url)('recheck/package.json') as { version: string }).version} fuzz`;

/**
 * Final verdicts (safe, vulnerable) by sha256 of the pattern, in a JSON file: a restart reuses
 * them instead of spending up to seconds per pattern. A missing or unreadable file is an empty
 * cache; the file is written whole and renamed, so a crash never leaves half of it.
 */
export class SafetyVerdictCache {
  private readonly entries = new Map<string, SafetyVerdict>();
  private dirty = false;

  constructor(private readonly file: string) {
    try {
      const stored = JSON.parse(readFileSync(file, 'utf8')) as { checker?: unknown; verdicts?: Record<string, SafetyVerdict> };
      if (stored.checker === CHECKER && stored.verdicts) {
        for (const [key, verdict] of Object.entries(stored.verdicts)) {
          if (verdict && (verdict.status === 'safe' || verdict.status === 'vulnerable') && typeof verdict.detail === 'string') this.entries.set(key, verdict);
        }
      }
    } catch {
      // No cache yet, or an unreadable one: every pattern is checked again and the file rewritten.
    }
  }

  private static keyOf(source: string): string {
    return createHash('sha256').update(source).digest('hex');
  }

  get(source: string): SafetyVerdict | undefined {
    return this.entries.get(SafetyVerdictCache.keyOf(source));
  }

  set(source: string, verdict: SafetyVerdict): void {
    if (verdict.status === 'unknown') return;
    this.entries.set(SafetyVerdictCache.keyOf(source), verdict);
    this.dirty = true;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const temporary = `${this.file}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify({ checker: CHECKER, verdicts: Object.fromEntries(this.entries) }));
    await rename(temporary, this.file);
  }
}

/**
 * recheck's verdicts on the patterns of the rules leakwatch ships, in the cache file's format,
 * made by `npm run shipped-verdicts` and checked against recheck by the tests: a first start on the
 * shipped rules (a new data folder, a new container) checks nothing, so it never starts recheck's
 * thread (~35 MiB) and agent process (~160 MiB). A verdict belongs to the pattern, so it serves
 * any rule file that uses the same one.
 */
export const SHIPPED_VERDICTS_FILE = new URL('../../schema/shipped-regex-verdicts.json', import.meta.url);
let shipped: SafetyVerdictCache | undefined;

/**
 * A verdict kept from before, and where from: the cache file, then (unless `useShipped` is false)
 * the shipped verdicts; undefined when recheck has to be asked.
 */
export function storedVerdict(source: string, cache: SafetyVerdictCache | undefined, useShipped: boolean): { verdict: SafetyVerdict; from: 'cache-file' | 'shipped' } | undefined {
  const kept = cache?.get(source);
  if (kept !== undefined) return { verdict: kept, from: 'cache-file' };
  if (!useShipped) return undefined;
  shipped ??= new SafetyVerdictCache(fileURLToPath(SHIPPED_VERDICTS_FILE));
  const verdict = shipped.get(source);
  return verdict === undefined ? undefined : { verdict, from: 'shipped' };
}

/**
 * recheck's verdict on one pattern, cached (in memory, and in `cache` when given); never rejects.
 * `useShipped: false` asks recheck even for a pattern of the shipped rules (what makes their file).
 */
export function checkRegexSafety(source: string, timeoutMs = 5000, cache?: SafetyVerdictCache, useShipped = true): Promise<SafetyVerdict> {
  const stored = storedVerdict(source, cache, useShipped);
  if (stored) return Promise.resolve(stored.verdict);
  const cached = verdicts.get(source);
  if (cached) return cache ? cached.then((verdict) => (cache.set(source, verdict), verdict)) : cached;
  const verdict = checker.verdict(source, timeoutMs);
  if (verdicts.size >= MAX_CACHED_VERDICTS) verdicts.clear();
  verdicts.set(source, verdict);
  // A timeout says more about the machine's load than about the pattern: ask again next time.
  void verdict.then((result) => {
    if (result.status === 'unknown' && result.detail.startsWith('no verdict')) verdicts.delete(source);
  });
  return cache ? verdict.then((result) => (cache.set(source, result), result)) : verdict;
}
