// @ts-check
/** Direct memory per process: used against the limit over time, the trend line and the time to exhaustion. */
import { getJson } from './api.js';
import { formatBytes, formatPercent, h, replaceChildren, timeElement } from './dom.js';

/**
 * @typedef {{ t: string, used_bytes: number, max_bytes: number | null, source: string }} Sample
 * @typedef {{ host: string, service: string, pid: string, used_bytes: number, max_bytes: number | null, ratio: number | null,
 *   source: string, samples: Sample[], trend_bytes_per_hour: number | null, exhaustion_eta: string | null }} ProcessMemory
 * @typedef {{ refresh(): Promise<void>, dispose(): void }} Mounted
 */

const HOUR_S = 3600;

/** What each source measures, in an SRE's words. */
const SOURCES = /** @type {Record<string, string>} */ ({
  'netty-oodm': "Netty's direct-memory counter, from OutOfDirectMemoryError",
  'jdk-direct-buffer': "the JDK's direct-buffer counter, from 'Cannot reserve … direct buffer memory'",
  'finagle-netty4-pooling': 'finagle/netty4/pooling/used (linkerd metrics)',
  'jvm-buffer-pool': 'the JDK\'s direct buffer pool: jvm/mem/buffer/direct/used (linkerd), jvm_buffer_pool_used_bytes (JMX exporter), jvm_buffer_memory_used_bytes (Micrometer); does not see Netty\'s no-cleaner buffers',
  'netty-allocator': 'netty_allocator_memory_used_bytes{memory_type="direct"} (Micrometer), summed over the allocators',
});

/** Half an hour each side of a lone sample, so that it is not a point lost in an empty chart. */
const LONE_SAMPLE_MARGIN_S = 1800;

/**
 * The chart's columns: time (s), used, the limit, and the trend line from the newest sample on
 * (to the exhaustion time when it is near, else a while ahead). The limit spans the whole chart.
 * @param {ProcessMemory} process
 * @returns {{ data: (number | null)[][], hasMax: boolean, hasTrend: boolean }}
 */
export function chartColumns(process) {
  const samples = process.samples.filter((sample) => sample.source === process.source);
  /** @type {number[]} */
  const times = samples.map((sample) => Date.parse(sample.t) / 1000);
  /** @type {(number | null)[]} */
  const used = samples.map((sample) => sample.used_bytes);
  /** @type {(number | null)[]} */
  const trend = times.map(() => null);
  const first = times[0] ?? Date.now() / 1000;
  const last = times[times.length - 1] ?? first;
  const lastUsed = samples[samples.length - 1]?.used_bytes ?? process.used_bytes;
  const slope = process.trend_bytes_per_hour;
  const hasTrend = slope !== null && samples.length > 1;
  if (hasTrend) {
    const horizon = Math.max(last - first, HOUR_S);
    const eta = process.exhaustion_eta === null ? null : Date.parse(process.exhaustion_eta) / 1000;
    const end = eta !== null && eta > last ? Math.min(eta, last + 4 * horizon) : last + horizon / 2;
    const at = (/** @type {number} */ t) => lastUsed + (slope * (t - last)) / HOUR_S;
    trend[0] = at(first);
    trend[trend.length - 1] = lastUsed;
    times.push(end);
    used.push(null);
    trend.push(at(end));
  } else if (last - first < 60) {
    times.unshift(first - LONE_SAMPLE_MARGIN_S);
    used.unshift(null);
    trend.unshift(null);
    times.push(last + LONE_SAMPLE_MARGIN_S);
    used.push(null);
    trend.push(null);
  }
  const hasMax = process.max_bytes !== null;
  const max = times.map(() => process.max_bytes);
  return { data: [times, used, max, trend], hasMax, hasTrend };
}

/**
 * @param {HTMLElement} target
 * @param {ProcessMemory} process
 */
function drawChart(target, process) {
  const { data, hasMax, hasTrend } = chartColumns(process);
  const dark = window.matchMedia('(prefers-color-scheme: dark)').matches;
  const ink = dark ? '#c9d1d9' : '#24292f';
  const grid = dark ? '#30363d' : '#e5e7eb';
  const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const bytes = (/** @type {import('uplot')} */ _plot, /** @type {number | null} */ value) => (value === null ? '–' : formatBytes(value));
  /** @type {import('uplot').Series[]} */
  const series = [
    {},
    { label: 'used', stroke: '#1f6feb', width: 2, fill: dark ? 'rgba(31,111,235,0.15)' : 'rgba(31,111,235,0.08)', points: { show: true, size: 7, fill: '#1f6feb' }, value: bytes },
    { label: 'limit', stroke: '#cf222e', width: 2, dash: [6, 4], points: { show: false }, value: bytes },
    { label: 'trend', stroke: '#bf8700', width: 2, dash: [3, 3], spanGaps: true, points: { show: false }, value: bytes },
  ];
  // Columns of series with nothing to show are left out rather than listed empty in the legend.
  const keep = [true, true, hasMax, hasTrend];
  /** @type {import('uplot').Options} */
  const options = {
    width: Math.max(target.clientWidth, 240),
    height: target.clientWidth < 500 ? 180 : 240,
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (_plot, min, max) => [0, Math.max(max, min, 1) * 1.08] } },
    axes: [axis, { ...axis, size: 70, values: (_plot, splits) => splits.map((value) => formatBytes(value)) }],
    series: series.filter((_, index) => keep[index]),
  };
  const columns = data.filter((_, index) => keep[index]);
  return new uPlot(options, /** @type {import('uplot').AlignedData} */ (/** @type {unknown} */ (columns)), target);
}

/** @param {ProcessMemory} process */
function etaText(process) {
  if (process.ratio !== null && process.ratio >= 1) return h('strong', { class: 'danger' }, 'at the limit');
  if (process.exhaustion_eta === null) return h('span', { class: 'muted' }, process.trend_bytes_per_hour === null ? 'no trend yet (one sample, or samples too close)' : 'not rising');
  return h('span', { class: Date.parse(process.exhaustion_eta) - Date.now() < 86_400_000 ? 'danger' : '' }, timeElement(process.exhaustion_eta));
}

/**
 * @param {HTMLElement} container
 * @returns {Mounted}
 */
export function mountMemory(container) {
  const list = h('div', { class: 'processes' });
  replaceChildren(container, h('h1', null, 'Direct memory per process'), h('p', { class: 'muted' }, 'Used against the limit over time, in event time; the dashed lines are the limit and the trend of the floor (the minimum of each twelfth of the last --direct-memory-window).'), list);
  /** @type {import('uplot')[]} */
  let charts = [];
  const resize = new ResizeObserver(() => {
    for (const chart of charts) {
      const width = chart.root.parentElement?.clientWidth ?? 0;
      if (width > 0 && Math.abs(width - chart.width) > 4) chart.setSize({ width, height: chart.height });
    }
  });
  resize.observe(list);

  function dispose() {
    resize.disconnect();
    for (const chart of charts) chart.destroy();
    charts = [];
  }

  async function refresh() {
    const { processes } = /** @type {{ processes: ProcessMemory[] }} */ (await getJson('/memory'));
    for (const chart of charts) chart.destroy();
    charts = [];
    if (processes.length === 0) {
      replaceChildren(list, h('p', { class: 'empty' }, 'No direct-memory data yet: it comes from OutOfDirectMemoryError and "Cannot reserve … direct buffer memory" events, and from linkerd metrics snapshots (finagle/netty4/pooling/used, jvm/mem/buffer/direct/used) posted to /ingest.'));
      return;
    }
    processes.sort((a, b) => (b.ratio ?? 0) - (a.ratio ?? 0));
    /** @type {Array<[HTMLElement, ProcessMemory]>} */
    const targets = [];
    replaceChildren(
      list,
      processes.map((process) => {
        const chart = h('div', { class: 'chart', 'data-process': `${process.host}/${process.service}/${process.pid}` });
        targets.push([chart, process]);
        const trend = process.trend_bytes_per_hour;
        return h(
          'article',
          { class: 'process' },
          h('h2', null, `${process.host || '?'}/${process.service || '?'}`, h('span', { class: 'muted' }, ` pid ${process.pid || '?'}`)),
          h(
            'dl',
            { class: 'facts' },
            h('div', null, h('dt', null, 'used'), h('dd', null, formatBytes(process.used_bytes), ' of ', formatBytes(process.max_bytes), ' ', h('meter', { min: 0, max: 1, low: 0.7, high: 0.9, optimum: 0, value: process.ratio ?? 0, title: formatPercent(process.ratio) }), ' ', formatPercent(process.ratio))),
            h('div', null, h('dt', null, 'trend'), h('dd', null, trend === null ? '–' : `${trend >= 0 ? '+' : ''}${formatBytes(trend)}/h`)),
            h('div', null, h('dt', null, 'exhaustion'), h('dd', null, etaText(process))),
            h('div', null, h('dt', null, 'newest sample'), h('dd', null, timeElement(process.samples[process.samples.length - 1]?.t ?? null), h('span', { class: 'muted', title: SOURCES[process.source] ?? process.source }, ` · ${process.source}`))),
          ),
          chart,
        );
      }),
    );
    for (const [target, process] of targets) charts.push(drawChart(target, process));
  }
  return { refresh, dispose };
}

