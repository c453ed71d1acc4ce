// @ts-check
/** The rules in force, their load errors (file:line:col), and the unclassified traces seen most often. */
import { getJson } from './api.js';
import { h, replaceChildren, timeElement } from './dom.js';

/**
 * @typedef {{ file: string, line: number, col: number, message: string, severity: string, text: string }} Problem
 * @typedef {{ id: string, version: number, title: string, category: string, enabled: boolean, fallback: boolean, file: string }} Rule
 * @typedef {{ hash: string, loaded_at: string | null, rules: Rule[], warnings: Problem[],
 *   last_reload: { ok: boolean, at: string | null, errors: Problem[] },
 *   fallback: { hash: string, saved_at: string, dir: string, errors: Problem[] } | null }} RulesStatus
 * @typedef {{ first_line: string, count: number, last_seen: string, host: string, service: string, example: string[] }} Shape
 * @typedef {{ total: number, distinct: number, shapes: Shape[] }} Unclassified
 * @typedef {{ refresh(): Promise<void> }} Mounted
 */

/**
 * @param {Problem[]} problems
 * @param {string} kind
 */
function problemList(problems, kind) {
  return h('ul', { class: `problems ${kind}` }, problems.map((problem) => h('li', null, h('code', null, problem.text))));
}

/**
 * @param {HTMLElement} container
 * @returns {Mounted}
 */
export function mountRules(container) {
  const state = h('section', { class: 'rules-state' });
  const table = h('section', null);
  const unclassified = h('section', { class: 'unclassified' });
  replaceChildren(container, h('h1', null, 'Rules'), state, table, unclassified);

  async function refresh() {
    const [rules, tally] = await Promise.all([getJson('/rules'), getJson('/unclassified?limit=20')]);
    const status = /** @type {RulesStatus} */ (rules);
    const shapes = /** @type {Unclassified} */ (tally);
    const open = new Set([...unclassified.querySelectorAll('details[open]')].map((element) => element.getAttribute('data-key')));
    replaceChildren(
      state,
      status.fallback
        ? h('div', { class: 'notice error' }, h('strong', null, 'Running on the last good rules'), ` (hash ${status.fallback.hash}, saved `, timeElement(status.fallback.saved_at), '): the rule files did not load at start-up. Fix them; the server picks the fix up by itself.', problemList(status.fallback.errors, 'errors'))
        : null,
      status.last_reload.ok
        ? h('p', { class: 'notice ok' }, `${status.rules.length} rules in force (hash ${status.hash}), loaded `, timeElement(status.loaded_at), '.')
        : h('div', { class: 'notice error' }, h('strong', null, 'The last reload failed'), ' (', timeElement(status.last_reload.at), `); the previous rules (hash ${status.hash || 'none'}) stay in force. Errors:`, problemList(status.last_reload.errors, 'errors')),
      status.warnings.length > 0 ? h('details', { class: 'warnings' }, h('summary', null, `${status.warnings.length} warning${status.warnings.length === 1 ? '' : 's'}`), problemList(status.warnings, 'warnings')) : null,
    );
    replaceChildren(
      table,
      h('h2', null, 'In force'),
      h(
        'table',
        { class: 'rules' },
        h('thead', null, h('tr', null, ['rule', 'category', 'title', 'file'].map((title) => h('th', { scope: 'col' }, title)))),
        h(
          'tbody',
          null,
          status.rules.map((rule) =>
            h(
              'tr',
              { class: rule.enabled ? '' : 'disabled' },
              h('td', null, h('code', null, rule.id), ` v${rule.version}`, rule.enabled ? null : h('span', { class: 'badge' }, 'disabled'), rule.fallback ? h('span', { class: 'badge', title: 'tried only when no other rule matched' }, 'fallback') : null),
              h('td', null, h('a', { href: `#/incidents?status=all&category=${encodeURIComponent(rule.category)}` }, rule.category)),
              h('td', null, rule.title),
              h('td', { class: 'muted' }, rule.file),
            ),
          ),
        ),
      ),
    );
    replaceChildren(
      unclassified,
      h('h2', null, 'Unclassified traces seen most often'),
      h('p', { class: 'muted' }, `${shapes.total} multi-line record${shapes.total === 1 ? '' : 's'} no rule matched since the server started, by the shape of their first line (numbers as N): where the next rule is to be found (rules/README.md shows how to write one).`),
      shapes.shapes.length === 0
        ? h('p', null, 'None so far.')
        : h(
            'ol',
            { class: 'shapes' },
            shapes.shapes.map((shape) =>
              h(
                'li',
                null,
                h('details', { 'data-key': shape.first_line }, h('summary', null, h('span', { class: 'count num' }, `${shape.count}×`), ' ', h('code', null, shape.first_line), h('span', { class: 'muted' }, ` · e.g. on ${shape.host || '?'}/${shape.service || '?'}, last seen `), timeElement(shape.last_seen)), h('pre', { class: 'trace' }, shape.example.join('\n'))),
              ),
            ),
          ),
    );
    for (const element of unclassified.querySelectorAll('details')) if (open.has(element.getAttribute('data-key'))) element.setAttribute('open', '');
  }
  return { refresh };
}
