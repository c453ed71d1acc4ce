/**
 * Hot reload: keeps the current rule set, builds a complete new one off to the side, and swaps
 * only when it is valid. A bad edit keeps the last good rules, logs every finding and counts the
 * failure (vmalert/Prometheus behaviour), so a typo never takes classification down.
 */
import { watch as watchFs, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { DEFAULT_GROUPER } from '../engine/grouper-config.js';
import { RuleClassifier } from './classifier.js';
import { CountWindows } from './count-windows.js';
import { loadRuleSet, type RuleSet } from './load.js';
import { formatProblem, type RuleProblem } from './problems.js';
import { SafetyVerdictCache } from './regex-safety.js';

export interface ReloadOutcome {
  ok: boolean;
  at: string | null;
  errors: RuleProblem[];
  /** Regexes checked for safety, and how many verdicts came from the cache file in the data folder. */
  regex_checks?: { total: number; from_cache_file: number };
}

export interface RuleSetStatus {
  hash: string;
  /** ISO time of the last successful load; null before the first. */
  loaded_at: string | null;
  rules: RuleSet['rules'];
  warnings: RuleProblem[];
  last_reload: ReloadOutcome;
}

const EMPTY_RULE_SET: RuleSet = {
  hash: '',
  rules: [],
  groupers: [DEFAULT_GROUPER],
  classifier: new RuleClassifier([], new CountWindows(1)),
  validatedFiles: [],
  countKeys: [],
};

const WATCH_DEBOUNCE_MS = 250;

export class RuleSetHolder {
  /** Reloads that were refused because the new rules had errors (exported as a metric). */
  reloadFailures = 0;
  private ruleSet: RuleSet = EMPTY_RULE_SET;
  private loadedAt: string | null = null;
  private warnings: RuleProblem[] = [];
  private lastReload: ReloadOutcome = { ok: false, at: null, errors: [] };
  /** Count-threshold windows outlive reloads; they are keyed by rule id and version. */
  private readonly windows = new CountWindows();
  private pending: Promise<{ ok: boolean; errors: RuleProblem[] }> | null = null;
  private readonly safetyCache: SafetyVerdictCache | undefined;
  /** Regex safety progress of the load under way, for /readyz. */
  private safetyProgress: { checked: number; total: number } | null = null;

  constructor(
    readonly dir: string,
    private readonly log?: Logger,
    options: { safetyCacheFile?: string } = {},
  ) {
    this.safetyCache = options.safetyCacheFile === undefined ? undefined : new SafetyVerdictCache(options.safetyCacheFile);
  }

  /** The rule set to classify with. Before the first successful reload: no rules, default grouper. */
  current(): RuleSet {
    return this.ruleSet;
  }

  /** True once a rule set has been loaded (for /readyz). */
  isLoaded(): boolean {
    return this.loadedAt !== null;
  }

  /** What a load under way is doing, for /readyz; null when none is. */
  loading(): string | null {
    if (this.pending === null) return null;
    const progress = this.safetyProgress;
    return progress === null ? 'loading the rule files' : `checking regexes for catastrophic backtracking (${progress.checked}/${progress.total})`;
  }

  /** Loads the folder again; a call during a load waits for it and then loads again, so it sees the latest files. */
  reload(): Promise<{ ok: boolean; errors: RuleProblem[] }> {
    if (this.pending) {
      return this.pending.then(() => this.reload());
    }
    this.pending = this.load().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async load(): Promise<{ ok: boolean; errors: RuleProblem[] }> {
    let result: Awaited<ReturnType<typeof loadRuleSet>>;
    try {
      result = await loadRuleSet(this.dir, {
        checkRegexSafety: true,
        windows: this.windows,
        safetyCache: this.safetyCache,
        onSafetyProgress: (checked, total) => {
          this.safetyProgress = { checked, total };
        },
      });
    } catch (error) {
      // loadRuleSet reports problems instead of throwing; this is the last guard for the unexpected.
      result = { ruleSet: null, errors: [{ file: this.dir, line: 1, col: 1, message: `reload failed: ${String(error)}`, severity: 'error' }], warnings: [] };
    }
    this.safetyProgress = null;
    const at = new Date().toISOString();
    this.lastReload = { ok: result.ruleSet !== null, at, errors: result.errors };
    if (result.regexChecks) this.lastReload.regex_checks = { total: result.regexChecks.total, from_cache_file: result.regexChecks.fromCacheFile };
    for (const warning of result.warnings) this.log?.warn({ rules_dir: this.dir }, formatProblem(warning));
    if (!result.ruleSet) {
      this.reloadFailures += 1;
      for (const error of result.errors) this.log?.error({ rules_dir: this.dir }, formatProblem(error));
      this.log?.error({ rules_dir: this.dir, errors: result.errors.length, kept_hash: this.ruleSet.hash }, 'rules reload failed; keeping the previous rules');
      return { ok: false, errors: result.errors };
    }
    this.ruleSet = result.ruleSet;
    this.loadedAt = at;
    this.warnings = result.warnings;
    this.log?.info({ rules_dir: this.dir, hash: result.ruleSet.hash, rules: result.ruleSet.rules.length }, 'rules loaded');
    return { ok: true, errors: [] };
  }

  /** Reloads (debounced) when a file under the folder changes; returns the function that stops watching. */
  watch(): () => void {
    let timer: NodeJS.Timeout | null = null;
    let watcher: FSWatcher | null = null;
    const schedule = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        void this.reload();
      }, WATCH_DEBOUNCE_MS);
    };
    try {
      watcher = watchFs(this.dir, { recursive: true, persistent: false }, schedule);
      watcher.on('error', (error) => this.log?.error({ rules_dir: this.dir, err: error }, 'watching the rules folder failed; use POST /-/reload'));
    } catch (error) {
      this.log?.error({ rules_dir: this.dir, err: error }, 'cannot watch the rules folder; use POST /-/reload');
    }
    return () => {
      if (timer) clearTimeout(timer);
      watcher?.close();
    };
  }

  status(): RuleSetStatus {
    return { hash: this.ruleSet.hash, loaded_at: this.loadedAt, rules: this.ruleSet.rules, warnings: this.warnings, last_reload: this.lastReload };
  }
}
