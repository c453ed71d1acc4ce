/**
 * The one grammar for values with units, shared by the configuration (flags, environment) and the
 * rule files: durations and byte sizes. Both parsers return null for text that is not such a
 * value; callers say where the value came from when they report it.
 */

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `2s`, `10m`, `1h`, `1d` (a space before the unit is allowed) → milliseconds; null otherwise. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text);
  if (!match) return null;
  return Math.round(Number(match[1]) * (DURATION_MS[match[2] as string] as number));
}

/** 90000 → `90s`, 3600000 → `1h`, 604800000 → `7d`: the largest unit that divides it, as parseDuration reads it back. */
export function formatDuration(ms: number): string {
  if (ms >= 86_400_000 && ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const BYTES = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?\s*$/i;
const BYTE_POWER: Record<string, number> = { k: 1, m: 2, g: 3, t: 4 };

/**
 * `1048576`, `1k`, `1KiB`, `1.5 MB`, `4g`, `32MiB` → an integer byte count; null when not a size.
 * Every suffix is binary (k = 1024), as in the JVM's own -Xmx/-XX:MaxDirectMemorySize and in the
 * `(reserved=1349KB)` figures of Native Memory Tracking, which mean KiB.
 */
export function parseBytes(text: string): number | null {
  const match = BYTES.exec(text);
  if (!match) return null;
  const unit = match[2]?.toLowerCase();
  const value = Number(match[1]) * (unit ? 1024 ** (BYTE_POWER[unit] as number) : 1);
  return Number.isFinite(value) ? Math.round(value) : null;
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1073741824 → `1.0 GiB`, 1037041958 → `989.0 MiB`, 512 → `512 B`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const sign = bytes < 0 ? '-' : '';
  return unit === 0 ? `${sign}${value} B` : `${sign}${value.toFixed(1)} ${BINARY_UNITS[unit]}`;
}
