import { execFileSync } from 'node:child_process';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RuleSetHolder } from '../../src/rules/index.js';
import { TAIL_RESET_TRACE, groupOf, rulesDir, tailResetRule } from './helpers.js';

// Issue 11: the watcher stopped seeing a rule file after an editor's atomic save (sed -i, vim: a
// new file renamed over the old one) and never saw files in a renamed folder, so /rules kept
// an error for a file that was already fixed.
const RULE = tailResetRule;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function watchedHolder(files: Record<string, string>): Promise<{ dir: string; holder: RuleSetHolder }> {
  const { dir, cleanup } = await rulesDir(files);
  cleanups.push(cleanup);
  const holder = new RuleSetHolder(dir);
  expect((await holder.reload()).ok).toBe(true);
  cleanups.push(holder.watch());
  await holder.watchStarted();
  return { dir, holder };
}

async function categoryBecomes(holder: RuleSetHolder, category: string): Promise<void> {
  await expect
    .poll(() => holder.current().classifier.classify(groupOf(TAIL_RESET_TRACE))?.category, { timeout: 5000, interval: 50 })
    .toBe(category);
}

/** What vim does with `backupcopy=no` and most IDEs: write a new file beside it, rename it over. */
async function atomicSave(file: string, text: string): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  await writeFile(temporary, text);
  await rename(temporary, file);
}

describe('the rules watcher', () => {
  it('keeps seeing a file after sed -i and atomic saves, and after a fix of a broken save', async () => {
    const { dir, holder } = await watchedHolder({ 'tail.yaml': RULE('first') });
    const file = path.join(dir, 'tail.yaml');

    execFileSync('sed', ['-i', 's/category: first/category: second/', file]);
    await categoryBecomes(holder, 'second');
    execFileSync('sed', ['-i', 's/category: second/category: third/', file]);
    await categoryBecomes(holder, 'third');

    await atomicSave(file, RULE('fourth').replace('severity: warning', 'severity: warn'));
    await expect.poll(() => holder.status().last_reload.ok, { timeout: 5000, interval: 50 }).toBe(false);
    await atomicSave(file, RULE('fifth'));
    await categoryBecomes(holder, 'fifth');
    expect(holder.status().last_reload).toMatchObject({ ok: true, errors: [] });

    // And an in-place write after all those replacements.
    await writeFile(file, RULE('sixth'));
    await categoryBecomes(holder, 'sixth');
  });

  it('sees a renamed sub-folder, a new one, and edits inside them', async () => {
    const { dir, holder } = await watchedHolder({ 'team-a/tail.yaml': RULE('first') });
    await rename(path.join(dir, 'team-a'), path.join(dir, 'team-b'));
    await expect.poll(() => holder.status().rules.map((rule) => rule.file), { timeout: 5000, interval: 50 }).toEqual([expect.stringMatching(/team-b\/tail\.yaml$/)]);

    // A new file in the renamed folder.
    await writeFile(path.join(dir, 'team-b', 'other.yaml'), RULE('second').replace('id: tail-reset', 'id: other-rule'));
    await expect.poll(() => holder.status().rules.map((rule) => rule.id), { timeout: 5000, interval: 50 }).toEqual(['other-rule', 'tail-reset']);
    await rm(path.join(dir, 'team-b', 'other.yaml'));
    await writeFile(path.join(dir, 'team-b', 'tail.yaml'), RULE('second'));
    await categoryBecomes(holder, 'second');

    await mkdir(path.join(dir, 'team-c', 'nested'), { recursive: true });
    await rm(path.join(dir, 'team-b'), { recursive: true });
    await writeFile(path.join(dir, 'team-c', 'nested', 'tail.yaml'), RULE('third'));
    await categoryBecomes(holder, 'third');
    execFileSync('sed', ['-i', 's/category: third/category: fourth/', path.join(dir, 'team-c', 'nested', 'tail.yaml')]);
    await categoryBecomes(holder, 'fourth');
    execFileSync('sed', ['-i', 's/category: fourth/category: fifth/', path.join(dir, 'team-c', 'nested', 'tail.yaml')]);
    await categoryBecomes(holder, 'fifth');
  });

  it('sees the rules folder itself replaced by a rename, and a symlink swapped to another folder', async () => {
    const { dir: parent, cleanup } = await rulesDir({ 'v1/tail.yaml': RULE('first'), 'v2/tail.yaml': RULE('second'), 'v3/tail.yaml': RULE('third') });
    cleanups.push(cleanup);
    const live = path.join(parent, 'live');
    await rename(path.join(parent, 'v1'), live);
    const holder = new RuleSetHolder(live);
    expect((await holder.reload()).ok).toBe(true);
    cleanups.push(holder.watch());
    await holder.watchStarted();

    await rename(live, path.join(parent, 'v1-old'));
    await rename(path.join(parent, 'v2'), live);
    await categoryBecomes(holder, 'second');
    await writeFile(path.join(live, 'tail.yaml'), RULE('edited'));
    await categoryBecomes(holder, 'edited');

    // A symlink swapped the way deployments do it: a new link renamed over the old name.
    await rm(live, { recursive: true });
    await symlink(path.join(parent, 'v3'), `${live}.new`);
    await rename(`${live}.new`, live);
    await categoryBecomes(holder, 'third');
  });
});
