/**
 * The last good rule set of a scaled-out fleet, kept in the store every node shares: a node
 * started with broken rule files and a data folder of its own that never saw a good set (a new
 * pod, a replaced volume) runs on the rules the fleet last loaded instead of refusing to start.
 * The files go into the store as one meta value (a rule set is kilobytes); the copy a node loads
 * from is written into its data folder by LastGoodRules, which is also what it falls back to
 * while the store does not answer.
 */
import path from 'node:path';
import { LastGoodRules, type LastGoodCopy, type LastGoodKeeper, type RuleSource } from '../rules/last-good.js';
import type { Store } from '../store/store.js';

export const LAST_GOOD_RULES_KEY = 'rules_last_good';

interface StoredRuleSet {
  hash: string;
  saved_at: string;
  source_dir: string;
  files: RuleSource[];
}

function parseStored(text: string | undefined): StoredRuleSet | null {
  if (text === undefined) return null;
  try {
    const stored = JSON.parse(text) as Partial<StoredRuleSet>;
    if (typeof stored.hash !== 'string' || !/^[0-9a-f]{16}$/.test(stored.hash) || !Array.isArray(stored.files)) return null;
    return { hash: stored.hash, saved_at: String(stored.saved_at), source_dir: String(stored.source_dir), files: stored.files };
  } catch {
    return null;
  }
}

export class SharedLastGoodRules implements LastGoodKeeper {
  private readonly local: LastGoodRules;

  constructor(
    private readonly store: Pick<Store, 'getMeta' | 'setMeta'>,
    /** The node's own folder for the copy it loads (its data folder's rules-last-good). */
    readonly root: string,
  ) {
    this.local = new LastGoodRules(root);
  }

  /** The fleet's last good set, copied into the local folder; the local copy alone while the store does not answer. */
  async find(): Promise<LastGoodCopy | null> {
    let stored: StoredRuleSet | null;
    try {
      stored = parseStored(this.store.getMeta(LAST_GOOD_RULES_KEY));
    } catch {
      return this.local.find();
    }
    if (stored === null) return this.local.find();
    await this.local.save(stored.hash, stored.files, stored.source_dir);
    return { dir: path.join(this.root, stored.hash), hash: stored.hash, saved_at: stored.saved_at, source_dir: stored.source_dir };
  }

  /** Keeps the set in the local folder, then in the shared store unless it already holds this set. */
  async save(hash: string, sources: readonly RuleSource[], sourceDir: string): Promise<void> {
    await this.local.save(hash, sources, sourceDir);
    if (parseStored(this.store.getMeta(LAST_GOOD_RULES_KEY))?.hash === hash) return;
    const stored: StoredRuleSet = { hash, saved_at: new Date().toISOString(), source_dir: path.resolve(sourceDir), files: [...sources] };
    this.store.setMeta(LAST_GOOD_RULES_KEY, JSON.stringify(stored));
  }
}
