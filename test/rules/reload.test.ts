import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { RuleSetHolder, rulesRoutes, runRuleTests } from '../../src/rules/index.js';
import { TAIL_RESET_TRACE, groupOf, rulesDir, tailResetRule } from './helpers.js';

const GOOD = tailResetRule;
// The same file with a typo in the severity on line 7.
const BROKEN = GOOD('exception-caught-at-tail').replace('severity: warning', 'severity: warn');

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function holderFor(text: string) {
  const { dir, cleanup } = await rulesDir({ 'tail.yaml': text });
  cleanups.push(cleanup);
  return { dir, holder: new RuleSetHolder(dir) };
}

describe('RuleSetHolder', () => {
  it('keeps the last good rules when an edit is broken, and reports the error with its line', async () => {
    const { dir, holder } = await holderFor(GOOD('exception-caught-at-tail'));
    expect(holder.current().rules).toEqual([]);
    expect(await holder.reload()).toEqual({ ok: true, errors: [] });
    const hash = holder.current().hash;

    await writeFile(path.join(dir, 'tail.yaml'), BROKEN);
    const failed = await holder.reload();
    expect(failed.ok).toBe(false);
    expect(holder.reloadFailures).toBe(1);
    expect(holder.current().hash).toBe(hash);
    expect(holder.current().classifier.classify(groupOf(TAIL_RESET_TRACE))?.category).toBe('exception-caught-at-tail');
    const status = holder.status();
    expect(status.last_reload.ok).toBe(false);
    expect(status.last_reload.errors).toMatchObject([{ line: 7, col: 63, message: 'rules[0].classify.severity: must be one of info, warning, error, critical (got "warn")' }]);

    await writeFile(path.join(dir, 'tail.yaml'), GOOD('renamed-category'));
    expect((await holder.reload()).ok).toBe(true);
    expect(holder.current().classifier.classify(groupOf(TAIL_RESET_TRACE))?.category).toBe('renamed-category');
    expect(holder.status().last_reload).toMatchObject({ ok: true, errors: [] });
  });

  it('watch() picks up a changed file', async () => {
    const { dir, holder } = await holderFor(GOOD('exception-caught-at-tail'));
    await holder.reload();
    const stop = holder.watch();
    try {
      await writeFile(path.join(dir, 'tail.yaml'), GOOD('watched-category'));
      await expect
        .poll(() => holder.current().classifier.classify(groupOf(TAIL_RESET_TRACE))?.category, { timeout: 10_000, interval: 100 })
        .toBe('watched-category');
    } finally {
      stop();
    }
  });
});

describe('rules routes', () => {
  it('serves GET /rules and POST /-/reload over HTTP, 422 with errors for a broken edit', async () => {
    const { dir, holder } = await holderFor(GOOD('exception-caught-at-tail'));
    await holder.reload();
    const app = Fastify();
    await app.register(rulesRoutes, { holder });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const listed = (await (await fetch(`${base}/rules`)).json()) as { rules: Array<{ id: string; file: string }>; hash: string };
      expect(listed.rules.map((rule) => rule.id)).toEqual(['tail-reset']);

      await writeFile(path.join(dir, 'tail.yaml'), BROKEN);
      const refused = await fetch(`${base}/-/reload`, { method: 'POST' });
      expect(refused.status).toBe(422);
      const body = (await refused.json()) as { code: string; message: string; problems: Array<{ text: string }> };
      expect(body.code).toBe('LW_ERR_RULES_INVALID');
      expect(body.message).toContain(`(hash ${listed.hash})`);
      expect(body.problems[0]?.text).toMatch(/tail\.yaml:7:63: rules\[0\]\.classify\.severity: must be one of/);
      const after = (await (await fetch(`${base}/rules`)).json()) as { last_reload: { ok: boolean; errors: Array<{ line: number }> } };
      expect(after.last_reload).toMatchObject({ ok: false, errors: [{ line: 7 }] });

      await writeFile(path.join(dir, 'tail.yaml'), GOOD('exception-caught-at-tail'));
      const accepted = await fetch(`${base}/-/reload`, { method: 'POST' });
      expect(accepted.status).toBe(200);
      expect(await accepted.json()).toMatchObject({ ok: true, rules: 1 });
    } finally {
      await app.close();
    }
  });
});

describe('runRuleTests', () => {
  it('passes the fixture rules tests through the engine', async () => {
    const report = await runRuleTests('test/rules/fixtures/valid');
    expect(report.results.map((r) => [r.rule, r.ok, r.diff])).toEqual([
      ['netty-direct-memory-exhausted', true, undefined],
      ['netty-direct-memory-exhausted', true, undefined],
      ['channel-init-failed', true, undefined],
    ]);
  });

  it('reports a readable diff for a failing expectation', async () => {
    const { dir, cleanup } = await rulesDir({
      'tail.yaml': `${GOOD('exception-caught-at-tail')}    tests:
      - name: seed thread, Nov 03 post (journald prefix kept)
        input: |
          Nov 03 17:36:55 web-7 linkerd[4416]: WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired, and it reached at the tail of the pipeline. It usually means the last handler in the pipeline did not handle the exception.
          Nov 03 17:36:55 web-7 linkerd[4416]: Connection reset by peer
        expect:
          - { category: exception-caught-at-tail, severity: error, host: web-7, pid: 4416, line_count: 2 }
      - name: ordinary line
        input: |
          I 1101 14:10:26.714 UTC THREAD42: /svc/foo: name resolution is negative
        expect: [{ category: exception-caught-at-tail }]
`,
    });
    cleanups.push(cleanup);
    const report = await runRuleTests(dir);
    expect(report).toMatchObject({ passed: 0, failed: 2 });
    expect(report.results[0]?.diff).toBe('event 1: severity: expected "error", got "warning"');
    expect(report.results[1]?.diff).toBe('expected 1 event(s), got 0');
  });
});
