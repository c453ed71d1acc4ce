// @ts-check
/**
 * The page's shell: routes on the URL's hash (#/incidents?…, #/incident/ID, #/memory, #/rules),
 * refreshes the view every 10 s (`/?refresh=N`: N s) while the tab is visible, and shows what
 * /readyz says is wrong.
 */
import { explain, getJson } from './api.js';
import { h, replaceChildren } from './dom.js';
import { mountIncident, mountIncidentList } from './incidents.js';
import { mountMemory } from './memory.js';
import { mountRules } from './rules.js';

/** Every 10 s, or every N s with `/?refresh=N` (1 at least). */
const REFRESH_MS = (() => {
  const seconds = Number(new URLSearchParams(location.search).get('refresh'));
  return Number.isFinite(seconds) && seconds >= 1 ? seconds * 1000 : 10_000;
})();

/** @typedef {{ refresh(): Promise<void>, dispose?(): void }} Mounted */

const view = /** @type {HTMLElement} */ (document.getElementById('view'));
const updated = /** @type {HTMLElement} */ (document.getElementById('updated'));
const pause = /** @type {HTMLButtonElement} */ (document.getElementById('pause'));
const banner = /** @type {HTMLElement} */ (document.getElementById('banner'));

/** @type {Mounted | null} */
let current = null;
let paused = false;
/** @type {number | undefined} */
let timer;
let generation = 0;

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path = '', query = ''] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  return { name: parts[0] ?? 'incidents', id: parts[1] === undefined ? null : decodeURIComponent(parts[1]), query: new URLSearchParams(query) };
}

function mount() {
  current?.dispose?.();
  const { name, id, query } = route();
  for (const link of document.querySelectorAll('nav a')) {
    const active = link.getAttribute('data-view') === (name === 'incident' ? 'incidents' : name);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (name === 'incident' && id !== null) {
    current = mountIncident(view, id);
    document.title = 'Incident · leakwatch';
  } else if (name === 'memory') {
    current = mountMemory(view);
    document.title = 'Memory · leakwatch';
  } else if (name === 'rules') {
    current = mountRules(view);
    document.title = 'Rules · leakwatch';
  } else {
    current = mountIncidentList(view, query);
    document.title = 'Incidents · leakwatch';
  }
  void refresh();
}

/** Banners for what makes the numbers on the page incomplete: rules falling back, a store that does not take writes. */
async function refreshBanner() {
  /** @type {{ ready: boolean, waiting_for?: string, store_problem?: string, rules_fallback?: string }} */
  let readiness;
  try {
    readiness = await getJson('/readyz');
  } catch (error) {
    // 503 carries the same body; fetch failing altogether is said by the view's own refresh.
    if (error instanceof Error && 'status' in error && error.status === 503) readiness = { ready: false, waiting_for: error.message };
    else return;
  }
  const problems = [readiness.rules_fallback, readiness.store_problem, readiness.ready ? undefined : `not ready: ${readiness.waiting_for ?? 'unknown'}`].filter((text) => text !== undefined);
  banner.hidden = problems.length === 0;
  replaceChildren(banner, problems.map((text) => h('p', null, text)));
}

async function refresh() {
  window.clearTimeout(timer);
  const mine = ++generation;
  const mounted = current;
  try {
    await Promise.all([mounted?.refresh(), refreshBanner()]);
    if (mine === generation) {
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      updated.classList.remove('error');
    }
  } catch (error) {
    if (mine === generation) {
      updated.textContent = explain(error);
      updated.classList.add('error');
    }
  } finally {
    if (mine === generation) schedule();
  }
}

function schedule() {
  window.clearTimeout(timer);
  if (!paused && document.visibilityState === 'visible') timer = window.setTimeout(() => void refresh(), REFRESH_MS);
}

pause.title = `Refreshes every ${REFRESH_MS / 1000} s`;
pause.addEventListener('click', () => {
  paused = !paused;
  pause.setAttribute('aria-pressed', String(paused));
  pause.textContent = paused ? 'Resume' : 'Pause';
  if (paused) window.clearTimeout(timer);
  else void refresh();
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && !paused) void refresh();
  else window.clearTimeout(timer);
});
window.addEventListener('hashchange', mount);
mount();
