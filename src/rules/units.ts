/**
 * Units in rule files: the same duration and size grammar as the configuration (src/units.ts),
 * plus the percentages message templates print.
 */
export { formatBytes, parseBytes, parseDuration } from '../units.js';

/** A ratio (0.999) → `99.9%`. */
export function formatPercent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}
