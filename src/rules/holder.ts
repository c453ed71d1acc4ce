/**
 * Hot reload: keeps the current rule set, builds a complete new one off to the side, and swaps
 * only when it is valid. A bad edit keeps the last good rules, logs every finding and counts the
 * failure (vmalert/Prometheus behaviour), so a typo never takes classification down. Every set
 * that loads is also kept in the data folder (last-good.ts): when the folder does not load at
 * start-up, that copy is used instead, loudly, until the folder is fixed.
 */
import type { Logger } from 'pino';
import { DEFAULT_GROUPER } from '../engine/grouper-config.js';
import { RuleClassifier } from './classifier.js';
import { CountWindows, type CountWindowState } from './count-windows.js';
import { LastGoodRules, type LastGoodCopy, type LastGoodKeeper } from './last-good.js';
import { loadRuleSet, type LoadResult, type RuleSet } from './load.js';
import { formatProblem, type RuleProblem } from './problems.js';
import { SafetyVerdictCache } from './regex-safety.js';
import { RulesFolderWatcher } from './watch.js';

export interface ReloadOutcome {
  ok: boolean;
  at: string | null;
  errors: RuleProblem[];
  /** Regexes checked for safety, and how many verdicts came from the cache file in the data folder or with leakwatch's own rules. */
  regex_checks?: { total: number; from_cache_file: number; from_shipped: number };
}

/** Set while the rules in force are the data folder's last good copy, because the rules folder did not load at start-up. */
export interface RulesFallback {
  /** The folder the copy was loaded from (inside the data folder). */
  dir: string;
  hash: string;
  /** When the copy was saved: when that rule set last loaded from the rules folder. */
  saved_at: string;
  source_dir: string;
  /** Since when the server runs on it. */
  since: string;
  /** Why: the rules folder's errors at start-up (the latest ones are in last_reload). */
  errors: RuleProblem[];
}

export interface RuleSetStatus {
  hash: string;
  /** ISO time of the last successful load; null before the first. */
  loaded_at: string | null;
  rules: RuleSet['rules'];
  warnings: RuleProblem[];
  last_reload: ReloadOutcome;
  /** Not null while running on the last good rules kept in the data folder. */
  fallback: RulesFallback | null;
}

const EMPTY_RULE_SET: RuleSet = {
  hash: '',
  rules: [],
  groupers: [DEFAULT_GROUPER],
  classifier: new RuleClassifier([], new CountWindows(1)),
  validatedFiles: [],
  countingRules: [],
  fixedTexts: new Set(),
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
  private readonly windows: CountWindowState;
  private pending: Promise<{ ok: boolean; errors: RuleProblem[] }> | null = null;
  private readonly safetyCache: SafetyVerdictCache | undefined;
  /** Regex safety progress of the load under way, for /readyz. */
  private safetyProgress: { checked: number; total: number } | null = null;
  private watching: Promise<void> = Promise.resolve();
  private readonly lastGood: LastGoodKeeper | undefined;
  private fallback: RulesFallback | null = null;

  constructor(
    readonly dir: string,
    private readonly log?: Logger,
    options: {
      safetyCacheFile?: string;
      /** Folder in the data folder where each rule set that loads is kept, and which a start with broken rules falls back to. */
      lastGoodDir?: string;
      /** Keeps the last good rule set elsewhere than in lastGoodDir (the shared store of a scaled-out fleet); wins over lastGoodDir. */
      lastGood?: LastGoodKeeper;
      /** Where count thresholds keep their times: this process by default, the shared store on engine nodes. */
      windows?: CountWindowState;
    } = {},
  ) {
    this.windows = options.windows ?? new CountWindows();
    this.safetyCache = options.safetyCacheFile === undefined ? undefined : new SafetyVerdictCache(options.safetyCacheFile);
    this.lastGood = options.lastGood ?? (options.lastGoodDir === undefined ? undefined : new LastGoodRules(options.lastGoodDir));
  }

  /** The data folder's last good copy, if a rule set ever loaded with it. */
  lastGoodCopy(): Promise<LastGoodCopy | null> {
    return this.lastGood?.find() ?? Promise.resolve(null);
  }

  /** Not null while the rules in force are the last good copy (the rules folder did not load at start-up). */
  fallbackInUse(): RulesFallback | null {
    return this.fallback;
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

  private async loadFolder(dir: string): Promise<LoadResult> {
    try {
      return await loadRuleSet(dir, {
        checkRegexSafety: true,
        windows: this.windows,
        safetyCache: this.safetyCache,
        onSafetyProgress: (checked, total) => {
          this.safetyProgress = { checked, total };
        },
      });
    } catch (error) {
      // loadRuleSet reports problems instead of throwing; this is the last guard for the unexpected.
      return { ruleSet: null, errors: [{ file: dir, line: 1, col: 1, message: `reload failed: ${String(error)}`, severity: 'error' }], warnings: [] };
    } finally {
      this.safetyProgress = null;
    }
  }

  private async load(): Promise<{ ok: boolean; errors: RuleProblem[] }> {
    const result = await this.loadFolder(this.dir);
    const at = new Date().toISOString();
    this.lastReload = { ok: result.ruleSet !== null, at, errors: result.errors };
    if (result.regexChecks) this.lastReload.regex_checks = { total: result.regexChecks.total, from_cache_file: result.regexChecks.fromCacheFile, from_shipped: result.regexChecks.fromShipped };
    for (const warning of result.warnings) this.log?.warn({ rules_dir: this.dir }, formatProblem(warning));
    if (!result.ruleSet) {
      this.reloadFailures += 1;
      for (const error of result.errors) this.log?.error({ rules_dir: this.dir }, formatProblem(error));
      if (this.isLoaded()) {
        this.log?.error({ rules_dir: this.dir, errors: result.errors.length, kept_hash: this.ruleSet.hash }, 'rules reload failed; keeping the previous rules');
      } else {
        await this.fallBackToLastGood(result.errors);
      }
      return { ok: false, errors: result.errors };
    }
    this.ruleSet = result.ruleSet;
    this.loadedAt = at;
    this.warnings = result.warnings;
    if (this.fallback) this.log?.warn({ rules_dir: this.dir, hash: result.ruleSet.hash }, 'the rules folder loads again; the last good copy is no longer in use');
    this.fallback = null;
    this.log?.info({ rules_dir: this.dir, hash: result.ruleSet.hash, rules: result.ruleSet.rules.length }, 'rules loaded');
    if (this.lastGood && result.sources) {
      // A data folder that cannot be written costs only the fallback, never the reload.
      await this.lastGood.save(result.ruleSet.hash, result.sources, this.dir).catch((error: unknown) =>
        this.log?.warn({ rules_dir: this.dir, last_good_dir: this.lastGood?.root, err: error }, 'cannot keep a copy of the rules as the last good set; a start with broken rules will not be able to fall back to them'),
      );
    }
    return { ok: true, errors: [] };
  }

  /** No rules yet and the folder does not load: the data folder's last good copy, said loudly. */
  private async fallBackToLastGood(errors: RuleProblem[]): Promise<void> {
    const copy = await this.lastGoodCopy();
    if (!copy) {
      this.log?.error({ rules_dir: this.dir, errors: errors.length }, 'the rules do not load and no rule set ever loaded with this data folder: nothing to fall back to');
      return;
    }
    const result = await this.loadFolder(copy.dir);
    if (!result.ruleSet) {
      for (const error of result.errors) this.log?.error({ last_good_dir: copy.dir }, formatProblem(error));
      this.log?.error({ rules_dir: this.dir, last_good_dir: copy.dir }, 'the rules do not load, and neither does the last good copy in the data folder');
      return;
    }
    const at = new Date().toISOString();
    this.ruleSet = result.ruleSet;
    this.loadedAt = at;
    this.warnings = result.warnings;
    this.fallback = { dir: copy.dir, hash: copy.hash, saved_at: copy.saved_at, source_dir: copy.source_dir, since: at, errors };
    this.log?.error(
      { rules_dir: this.dir, errors: errors.length, last_good_dir: copy.dir, hash: copy.hash, saved_at: copy.saved_at, rules: result.ruleSet.rules.length },
      `RULES FALLBACK: the rules in ${this.dir} do not load (${errors.length} error${errors.length === 1 ? '' : 's'} above); running on the last good rules (hash ${copy.hash}, saved ${copy.saved_at}) until they are fixed`,
    );
  }

  /**
   * Reloads (debounced) when anything under the folder changes, atomic saves and renamed folders
   * included; returns the function that stops watching.
   */
  watch(): () => void {
    const watcher = new RulesFolderWatcher(this.dir, () => void this.reload(), this.log, WATCH_DEBOUNCE_MS);
    this.watching = watcher.start().catch((error: unknown) => this.log?.error({ rules_dir: this.dir, err: error }, 'cannot watch the rules folder; use POST /-/reload'));
    return () => watcher.close();
  }

  /** Resolves once watch() watches every folder present when it was called (tests wait for it). */
  async watchStarted(): Promise<void> {
    await this.watching;
  }

  status(): RuleSetStatus {
    return { hash: this.ruleSet.hash, loaded_at: this.loadedAt, rules: this.ruleSet.rules, warnings: this.warnings, last_reload: this.lastReload, fallback: this.fallback };
  }
}
