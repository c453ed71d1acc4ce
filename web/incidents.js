// @ts-check
/** The incidents list (filters, status, paging) and one incident's page (evidence, events, trace, ack/resolve). */
import { explain, getJson, post } from './api.js';
import { fieldValue, h, replaceChildren, severityBadge, timeElement } from './dom.js';

/**
 * @typedef {{ category: string, count: number, first_seen: string, last_seen: string }} Evidence
 * @typedef {{ class: string, message: string }} Throwable
 * @typedef {{ id: string, timestamp: string, host: string, service: string, pid: string, rule: string, category: string,
 *   severity: string, tags: string[], message: string, text: string, line_count: number, truncated: boolean,
 *   exception: Throwable | null, causes: Throwable[], fields: Record<string, string | number | boolean> }} LeakEvent
 * @typedef {{ id: string, rule: string, category: string, severity: string, status: 'open' | 'resolved', host: string,
 *   service: string, pids: string[], first_seen: string, last_seen: string, count: number, summary: string,
 *   fields: Record<string, string | number | boolean>, evidence: Evidence[], last_event: LeakEvent | null,
 *   acked_at: string | null, resolved_at: string | null, reopened_count: number }} Incident
 * @typedef {{ incidents: Incident[], next_cursor: string | null }} IncidentPage
 * @typedef {{ refresh(): Promise<void> }} Mounted
 */

export const STATUSES = /** @type {const} */ ([
  ['open', 'Open'],
  ['resolved', 'Recently resolved'],
  ['all', 'All'],
]);
const FILTERS = ['host', 'service', 'category', 'severity', 'since'];
const SEVERITIES = ['critical', 'error', 'warning', 'info'];
const PAGE_SIZE = 50;

/**
 * The API query of the list's state (the hash's query, so a filtered view can be bookmarked).
 * @param {URLSearchParams} state
 * @param {string | null} cursor
 */
function listQuery(state, cursor) {
  const query = new URLSearchParams({ status: state.get('status') ?? 'open', limit: String(PAGE_SIZE) });
  for (const name of FILTERS) {
    const value = state.get(name);
    if (!value) continue;
    // A date picked on the page is the local day's start; the API takes an ISO instant.
    query.set(name, name === 'since' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00`).toISOString() : value);
  }
  if (cursor) query.set('cursor', cursor);
  return query;
}

/** @param {Incident} incident */
function incidentRow(incident) {
  const href = `#/incident/${encodeURIComponent(incident.id)}`;
  return h(
    'tr',
    { class: `incident ${incident.status}`, 'data-id': incident.id },
    h('td', { class: 'sev' }, severityBadge(incident.severity), incident.acked_at && incident.status === 'open' ? h('span', { class: 'badge acked', title: `acknowledged ${incident.acked_at}` }, 'acked') : null),
    h('td', { class: 'cat' }, h('a', { href }, incident.category), incident.status === 'resolved' ? h('span', { class: 'badge resolved' }, 'resolved') : null),
    h('td', { class: 'where' }, `${incident.host || '?'}/${incident.service || '?'}`, incident.pids.length > 0 ? h('span', { class: 'muted' }, ` [${incident.pids.slice(0, 3).join(', ')}${incident.pids.length > 3 ? ', …' : ''}]`) : null),
    h('td', { class: 'count num' }, incident.count),
    h('td', { class: 'first' }, timeElement(incident.first_seen)),
    h('td', { class: 'last' }, timeElement(incident.last_seen)),
    h('td', { class: 'summary' }, h('a', { href }, incident.summary)),
  );
}

/**
 * @param {HTMLElement} container
 * @param {URLSearchParams} state the hash's query: status and filters
 * @returns {Mounted}
 */
export function mountIncidentList(container, state) {
  const status = state.get('status') ?? 'open';
  const tabs = h(
    'div',
    { class: 'tabs', role: 'tablist', 'aria-label': 'status' },
    STATUSES.map(([value, label]) => {
      const next = new URLSearchParams(state);
      next.set('status', value);
      return h('a', { role: 'tab', href: `#/incidents?${next}`, 'aria-selected': value === status ? 'true' : 'false', class: value === status ? 'active' : '' }, label);
    }),
  );
  const form = h(
    'form',
    { class: 'filters', role: 'search' },
    ['host', 'service', 'category'].map((name) => h('label', null, name, h('input', { name, type: 'search', value: state.get(name) ?? '', placeholder: 'any', autocomplete: 'off', spellcheck: 'false' }))),
    h('label', null, 'severity', h('select', { name: 'severity' }, h('option', { value: '' }, 'any'), SEVERITIES.map((severity) => h('option', { value: severity, selected: state.get('severity') === severity }, severity)))),
    h('label', { title: 'last seen on or after this day' }, 'seen since', h('input', { name: 'since', type: 'date', value: state.get('since') ?? '' })),
    h('button', { type: 'submit' }, 'Filter'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ status });
    for (const name of FILTERS) {
      const value = fieldValue(form, name);
      if (value) next.set(name, value);
    }
    location.hash = `#/incidents?${next}`;
  });
  const results = h('div', { class: 'results' });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, 'Show more');
  replaceChildren(container, h('h1', { class: 'visually-hidden' }, 'Incidents'), tabs, form, results, more);

  /** Pages shown beyond the first (kept across refreshes). */
  let pages = 1;
  more.addEventListener('click', () => {
    pages++;
    void refresh();
  });

  async function refresh() {
    /** @type {Incident[]} */
    const incidents = [];
    let cursor = null;
    for (let page = 0; page < pages; page++) {
      const answer = /** @type {IncidentPage} */ (await getJson(`/incidents?${listQuery(state, cursor)}`));
      incidents.push(...answer.incidents);
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
    more.hidden = cursor === null;
    if (incidents.length > 0) {
      replaceChildren(
        results,
        h('p', { class: 'count-line muted' }, `${incidents.length}${cursor ? '+' : ''} incident${incidents.length === 1 ? '' : 's'}, latest activity first`),
        h(
          'table',
          { class: 'incidents' },
          h('thead', null, h('tr', null, ['severity', 'category', 'host/service', 'count', 'first seen', 'last seen', 'summary'].map((title) => h('th', { scope: 'col' }, title)))),
          h('tbody', null, incidents.map(incidentRow)),
        ),
      );
      return;
    }
    // Nothing here: say where the rest is, so that backfilled (long resolved) incidents are found.
    const everything = /** @type {IncidentPage} */ (await getJson('/incidents?status=all&limit=1'));
    const newest = everything.incidents[0];
    replaceChildren(
      results,
      h(
        'div',
        { class: 'empty' },
        h('p', null, status === 'open' ? 'No open incidents.' : status === 'resolved' ? 'No resolved incidents.' : 'No incidents.', FILTERS.some((name) => state.get(name)) ? ' (with these filters)' : ''),
        newest && status !== 'all'
          ? h('p', null, 'Incidents of other statuses exist, the latest last seen ', timeElement(newest.last_seen), ' (old logs sent later resolve by their own time): ', h('a', { href: '#/incidents?status=all' }, 'show all incidents'), '.')
          : null,
        !newest ? h('p', { class: 'muted' }, 'Send logs to POST /ingest (see the README); incidents appear here as the rules recognise failures.') : null,
      ),
    );
  }
  return { refresh };
}

/**
 * @param {Record<string, string | number | boolean>} fields
 */
function fieldTable(fields) {
  const entries = Object.entries(fields);
  if (entries.length === 0) return h('p', { class: 'muted' }, 'No fields.');
  return h('table', { class: 'fields' }, h('tbody', null, entries.map(([name, value]) => h('tr', null, h('th', { scope: 'row' }, name), h('td', null, String(value))))));
}

/**
 * What came before the incident on its host and service, each category linking to its incidents.
 * @param {Incident} incident
 */
function evidenceTable(incident) {
  if (incident.evidence.length === 0) return h('p', null, 'None.');
  const rows = incident.evidence.map((entry) => {
    const href = `#/incidents?status=all&host=${encodeURIComponent(incident.host)}&category=${encodeURIComponent(entry.category)}`;
    return h('tr', null, h('td', null, h('a', { href }, entry.category)), h('td', { class: 'num' }, entry.count), h('td', null, timeElement(entry.first_seen)), h('td', null, timeElement(entry.last_seen)));
  });
  return h('table', { class: 'evidence' }, h('thead', null, h('tr', null, ['category', 'count', 'first', 'last'].map((title) => h('th', { scope: 'col' }, title)))), h('tbody', null, rows));
}

/** @param {LeakEvent} event */
function eventItem(event) {
  return h(
    'details',
    { class: 'event', 'data-key': event.id },
    h('summary', null, timeElement(event.timestamp), ' ', severityBadge(event.severity), ' ', h('span', { class: 'muted' }, `pid ${event.pid || '?'}, ${event.line_count} lines`), event.tags.length > 0 ? h('span', { class: 'tags' }, ` +${event.tags.join(', +')}`) : null, h('div', { class: 'event-message' }, event.message)),
    h('pre', { class: 'trace' }, event.text),
  );
}

/**
 * @param {HTMLElement} container
 * @param {string} id
 * @returns {Mounted}
 */
export function mountIncident(container, id) {
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  const body = h('div', { class: 'incident-page' });
  replaceChildren(container, h('p', { class: 'back' }, h('a', { href: '#/incidents' }, '← incidents')), notice, body);

  /**
   * @param {'ack' | 'resolve'} action
   */
  async function act(action) {
    try {
      await post(`/incidents/${encodeURIComponent(id)}/${action}`);
      notice.hidden = false;
      notice.className = 'notice ok';
      notice.textContent = action === 'ack' ? 'Acknowledged.' : 'Resolved. A newer event reopens it.';
    } catch (error) {
      notice.hidden = false;
      notice.className = 'notice error';
      notice.textContent = explain(error);
    }
    await refresh();
  }

  async function refresh() {
    const incident = /** @type {Incident & { events: LeakEvent[] }} */ (await getJson(`/incidents/${encodeURIComponent(id)}`));
    const open = new Set([...body.querySelectorAll('details[open]')].map((element) => element.getAttribute('data-key')));
    const last = incident.last_event;
    replaceChildren(
      body,
      h(
        'header',
        { class: 'incident-head' },
        h('div', { class: 'badges' }, severityBadge(incident.severity), h('span', { class: `badge ${incident.status}` }, incident.status), incident.acked_at ? h('span', { class: 'badge acked' }, 'acked') : null, h('span', { class: 'category' }, incident.category)),
        h('h1', null, incident.summary),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', 'data-action': 'ack', disabled: incident.status !== 'open' || incident.acked_at !== null, onclick: () => void act('ack') }, incident.acked_at ? 'Acknowledged' : 'Acknowledge'),
          h('button', { type: 'button', 'data-action': 'resolve', disabled: incident.status === 'resolved', onclick: () => void act('resolve') }, incident.status === 'resolved' ? 'Resolved' : 'Resolve'),
        ),
      ),
      h(
        'dl',
        { class: 'facts' },
        [
          ['host/service', `${incident.host || '?'}/${incident.service || '?'}`],
          ['processes', incident.pids.join(', ') || '–'],
          ['rule', incident.rule],
          ['events', String(incident.count)],
          ['first seen', timeElement(incident.first_seen)],
          ['last seen', timeElement(incident.last_seen)],
          ['acknowledged', timeElement(incident.acked_at)],
          ['resolved', timeElement(incident.resolved_at)],
          ['reopened', String(incident.reopened_count)],
        ].map(([term, value]) => h('div', null, h('dt', null, term), h('dd', null, value))),
      ),
      last ? h('section', null, h('h2', null, 'Latest trace'), h('p', { class: 'muted' }, timeElement(last.timestamp), ` · pid ${last.pid || '?'} · ${last.line_count} lines${last.truncated ? ' (cut at the grouper\'s limit)' : ''}`), h('pre', { class: 'trace', id: 'trace' }, last.text)) : null,
      h(
        'section',
        null,
        h('h2', null, 'Evidence'),
        h('p', { class: 'muted' }, 'Other failures on the same host and service in the 15 minutes before it opened.'),
        evidenceTable(incident),
      ),
      h('section', null, h('h2', null, 'Fields'), fieldTable(incident.fields)),
      h('section', null, h('h2', null, `Latest events (${incident.events.length} of ${incident.count})`), h('div', { class: 'events' }, incident.events.map(eventItem))),
    );
    for (const element of body.querySelectorAll('details')) if (open.has(element.getAttribute('data-key'))) element.setAttribute('open', '');
  }
  return { refresh };
}
