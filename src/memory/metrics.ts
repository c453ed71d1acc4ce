/**
 * Per-process direct-memory gauges for /metrics, as plain samples (name, help, labels, value) so
 * that any exposition (the hand-written renderer, prom-client) can render them. Alertmanager users
 * alert on them directly, e.g. `leakwatch_direct_memory_seconds_to_exhaustion < 86400`. A value that
 * is not known (no limit, no rising floor) is left out rather than faked.
 */
import type { ProcessMemoryView } from './tracker.js';

export interface DirectMemoryMetricSample {
  name: string;
  help: string;
  type: 'gauge';
  labels: Record<string, string>;
  value: number;
}

export const DIRECT_MEMORY_METRICS = {
  used: { name: 'leakwatch_direct_memory_used_bytes', help: 'Direct memory in use by the process, newest sample (label source: what measured it).' },
  max: { name: 'leakwatch_direct_memory_max_bytes', help: 'Direct-memory limit of the process (reported, learned from its host and service, or --direct-memory-max).' },
  ratio: { name: 'leakwatch_direct_memory_ratio', help: 'Used over max, 0 to 1.' },
  secondsToExhaustion: {
    name: 'leakwatch_direct_memory_seconds_to_exhaustion',
    help: 'Seconds from the newest sample until the rising floor of direct memory reaches the limit; absent while the floor is not rising.',
  },
} as const;

export function directMemoryMetrics(views: readonly ProcessMemoryView[]): DirectMemoryMetricSample[] {
  const samples: DirectMemoryMetricSample[] = [];
  const add = (metric: { name: string; help: string }, labels: Record<string, string>, value: number | null): void => {
    if (value !== null && Number.isFinite(value)) samples.push({ ...metric, type: 'gauge', labels, value });
  };
  for (const view of views) {
    const labels = { host: view.host, service: view.service, pid: view.pid, source: view.source };
    add(DIRECT_MEMORY_METRICS.used, labels, view.used_bytes);
    add(DIRECT_MEMORY_METRICS.max, labels, view.max_bytes);
    add(DIRECT_MEMORY_METRICS.ratio, labels, view.ratio);
    add(DIRECT_MEMORY_METRICS.secondsToExhaustion, labels, view.seconds_to_exhaustion);
  }
  // Prometheus text wants a family's samples together.
  const order = Object.values(DIRECT_MEMORY_METRICS).map((m) => m.name as string);
  return samples.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
}
