/**
 * Prometheus text exposition (format 0.0.4) for the few gauges and counters leakwatch keeps.
 * Hand-written because the whole format needed here is "name{labels} value" lines with HELP/TYPE.
 */
export interface MetricSample {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  value: number;
  labels?: Record<string, string>;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function renderPrometheus(samples: readonly MetricSample[]): string {
  let out = '';
  const described = new Set<string>();
  for (const sample of samples) {
    if (!described.has(sample.name)) {
      described.add(sample.name);
      out += `# HELP ${sample.name} ${sample.help}\n# TYPE ${sample.name} ${sample.type}\n`;
    }
    const labels = sample.labels
      ? '{' + Object.entries(sample.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',') + '}'
      : '';
    out += `${sample.name}${labels} ${Number.isFinite(sample.value) ? sample.value : 0}\n`;
  }
  return out;
}
