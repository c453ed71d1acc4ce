// @ts-check
/**
 * Small helpers shared by the views: building elements (text always goes in as text, never as
 * HTML: every string here may come from a log line), and formatting bytes and times.
 */

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>} Attributes
 */

/**
 * An element with attributes (`on*` are listeners, booleans toggle) and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attributes | null} [attributes]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/**
 * @param {Node} parent
 * @param {(Child | Child[])[]} children
 */
function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

/**
 * Replaces an element's children.
 * @param {Element} element
 * @param {...(Child | Child[])} children
 */
export function replaceChildren(element, ...children) {
  element.textContent = '';
  append(element, children);
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/**
 * 1.5 GiB, 31.4 MiB: binary units, as the JVM's flags and the rules' summaries use.
 * @param {number | null | undefined} bytes
 */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '–';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${bytes < 0 ? '-' : ''}${unit === 0 ? value : value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** @param {number | null | undefined} ratio */
export function formatPercent(ratio) {
  return ratio === null || ratio === undefined || !Number.isFinite(ratio) ? '–' : `${(ratio * 100).toFixed(1)}%`;
}

const DATE_TIME = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

/**
 * The local date and time of an ISO-8601 instant.
 * @param {string | number | null | undefined} iso
 */
export function formatTime(iso) {
  if (iso === null || iso === undefined) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
}

const SPANS = /** @type {const} */ ([
  ['year', 365 * 86_400_000],
  ['month', 30 * 86_400_000],
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
]);
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/**
 * "3 hours ago", "in 2 days": from the wall clock of the browser.
 * @param {string | number | null | undefined} iso
 * @param {number} [now]
 */
export function relativeTime(iso, now = Date.now()) {
  if (iso === null || iso === undefined) return '';
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return '';
  const difference = at - now;
  for (const [unit, size] of SPANS) {
    if (Math.abs(difference) >= size || unit === 'second') return RELATIVE.format(Math.round(difference / size), unit);
  }
  return '';
}

/**
 * A time element: the local time, the relative one beside it, the instant in its title.
 * @param {string | null | undefined} iso
 */
export function timeElement(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  return h('time', { datetime: iso, title: iso }, formatTime(iso), h('span', { class: 'muted rel' }, ` (${relativeTime(iso)})`));
}

/** @param {string} severity */
export function severityBadge(severity) {
  return h('span', { class: `badge sev-${severity}` }, severity);
}

/**
 * A field of a form by name.
 * @param {HTMLFormElement} form
 * @param {string} name
 */
export function fieldValue(form, name) {
  const field = form.elements.namedItem(name);
  return field instanceof HTMLInputElement || field instanceof HTMLSelectElement ? field.value.trim() : '';
}
