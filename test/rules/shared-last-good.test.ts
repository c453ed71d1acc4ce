/**
 * Issue 13: the last good rule set is kept in the store every node shares, so a node whose own
 * data folder never saw a good set (a new pod) and whose rule files are broken runs on the rules
 * another node last loaded, instead of refusing to start. On both store backends; PostgreSQL is a
 * real server, and the second node reaches it over a connection of its own.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuleSetHolder } from '../../src/rules/holder.js';
import { LAST_GOOD_RULES_KEY, SharedLastGoodRules } from '../../src/scale/shared-last-good.js';
import type { Store } from '../../src/store/store.js';
import { storeBackends } from '../helpers/store-backends.js';
import { tempDirs } from '../helpers/temp-dirs.js';
import { rulesDir, tailResetRule } from './helpers.js';

const tempDir = tempDirs();
const BROKEN = 'rules:\n  - id: tail-reset\n    match: [\n';

describe.each(storeBackends('last-good'))('the last good rule set in the shared store, on $name', (backend) => {
  let firstNodeStore: Store;
  let secondNodeStore: Store;
  const cleanups: Array<() => Promise<void>> = [];

  beforeEach(() => {
    firstNodeStore = backend.fresh();
    secondNodeStore = backend.reopen();
  });
  afterEach(async () => {
    firstNodeStore.close();
    secondNodeStore.close();
    backend.cleanUp();
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function folderWith(text: string): Promise<string> {
    const { dir, cleanup } = await rulesDir({ 'tail.yaml': text });
    cleanups.push(cleanup);
    return dir;
  }

  it('a node with a new data folder and broken rule files runs on the set another node last loaded', async () => {
    const good = await folderWith(tailResetRule('reset-at-tail'));
    const firstNode = new RuleSetHolder(good, undefined, { lastGood: new SharedLastGoodRules(firstNodeStore, path.join(tempDir('node-a'), 'rules-last-good')) });
    expect(await firstNode.reload()).toEqual({ ok: true, errors: [] });
    const hash = firstNode.current().hash;

    const broken = await folderWith(BROKEN);
    const secondLastGood = path.join(tempDir('node-b'), 'rules-last-good');
    const secondNode = new RuleSetHolder(broken, undefined, { lastGood: new SharedLastGoodRules(secondNodeStore, secondLastGood) });
    const result = await secondNode.reload();
    expect(result.ok).toBe(false);
    expect(secondNode.fallbackInUse()).toMatchObject({ hash, source_dir: path.resolve(good), dir: path.join(secondLastGood, hash) });
    expect(secondNode.current().hash).toBe(hash);
    expect(secondNode.current().rules.map((rule) => [rule.id, rule.category])).toEqual([['tail-reset', 'reset-at-tail']]);
    // The copy it runs on is in its own data folder, file for file.
    expect(await readFile(path.join(secondLastGood, hash, 'tail.yaml'), 'utf8')).toBe(tailResetRule('reset-at-tail'));
  });

  it('a newer good set on any node replaces the shared one; a store that never saw one leaves nothing to fall back to', async () => {
    const broken = await folderWith(BROKEN);
    const lonely = new RuleSetHolder(broken, undefined, { lastGood: new SharedLastGoodRules(secondNodeStore, path.join(tempDir('node-b'), 'rules-last-good')) });
    expect(await lonely.lastGoodCopy()).toBeNull();
    await lonely.reload();
    expect(lonely.fallbackInUse()).toBeNull();
    expect(lonely.isLoaded()).toBe(false);

    const firstNode = new RuleSetHolder(await folderWith(tailResetRule('old')), undefined, { lastGood: new SharedLastGoodRules(firstNodeStore, path.join(tempDir('node-a'), 'rules-last-good')) });
    await firstNode.reload();
    const secondNode = new RuleSetHolder(await folderWith(tailResetRule('new')), undefined, { lastGood: new SharedLastGoodRules(secondNodeStore, path.join(tempDir('node-c'), 'rules-last-good')) });
    await secondNode.reload();
    expect(firstNode.current().hash).not.toBe(secondNode.current().hash);
    const stored = JSON.parse(firstNodeStore.getMeta(LAST_GOOD_RULES_KEY)!) as { hash: string };
    expect(stored.hash).toBe(secondNode.current().hash);
  });
});
