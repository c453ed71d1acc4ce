/**
 * Settings for `leakwatch serve`: defaults, overridden by LEAKWATCH_* environment variables,
 * overridden by command-line flags. Every value is validated once here, so the rest of the
 * program can trust its Config.
 */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  rulesDir: string;
  forwardUrls: string[];
  token: string | undefined;
  /** Largest request body after decompression. */
  maxBodyBytes: number;
  /** Records the engine's input queue holds before ingest answers 503. */
  queueRecords: number;
  /** Quiet period (event time) after which an open incident resolves. */
  resolveAfterMs: number;
  logLevel: string;
}

export const DEFAULTS: Config = {
  port: 8080,
  host: '127.0.0.1',
  dataDir: './data',
  rulesDir: './rules',
  forwardUrls: [],
  token: undefined,
  maxBodyBytes: 32 * 1024 * 1024,
  queueRecords: 500_000,
  resolveAfterMs: 30 * 60 * 1000,
  logLevel: 'info',
};

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Raw values as strings, from flags or the environment (commander gives strings too). */
export type RawSettings = Partial<Record<keyof Config, string | string[] | undefined>>;

const ENV_NAMES: Record<keyof Config, string> = {
  port: 'LEAKWATCH_PORT',
  host: 'LEAKWATCH_HOST',
  dataDir: 'LEAKWATCH_DATA_DIR',
  rulesDir: 'LEAKWATCH_RULES',
  forwardUrls: 'LEAKWATCH_FORWARD_URL',
  token: 'LEAKWATCH_TOKEN',
  maxBodyBytes: 'LEAKWATCH_MAX_BODY_BYTES',
  queueRecords: 'LEAKWATCH_QUEUE_RECORDS',
  resolveAfterMs: 'LEAKWATCH_RESOLVE_AFTER',
  logLevel: 'LEAKWATCH_LOG_LEVEL',
};

export function envName(key: keyof Config): string {
  return ENV_NAMES[key];
}

function fromEnv(env: NodeJS.ProcessEnv): RawSettings {
  const raw: RawSettings = {};
  for (const key of Object.keys(ENV_NAMES) as (keyof Config)[]) {
    const value = env[ENV_NAMES[key]];
    if (value === undefined || value === '') continue;
    // Several forward URLs fit in one variable, separated by commas or spaces.
    raw[key] = key === 'forwardUrls' ? value.split(/[\s,]+/).filter(Boolean) : value;
  }
  return raw;
}

function integer(name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new ConfigError(`${name}: expected a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(`${name}: must be between ${min} and ${max}, got ${n}`);
  return n;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

export function parseByteSize(name: string, value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new ConfigError(`${name}: expected a size such as 32MiB or 1048576, got "${value}"`);
  return Math.floor(Number(match[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(name: string, value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!match) throw new ConfigError(`${name}: expected a duration such as 2s, 30m or 1h, got "${value}"`);
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2]!]!);
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

/** Flags win over the environment, which wins over the defaults. */
export function resolveConfig(flags: RawSettings, env: NodeJS.ProcessEnv = process.env): Config {
  const envRaw = fromEnv(env);
  const pick = (key: keyof Config): string | string[] | undefined => flags[key] ?? envRaw[key];
  const label = (key: keyof Config): string => `${envName(key)} / --${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
  const config: Config = { ...DEFAULTS, forwardUrls: [] };

  const port = one(pick('port'));
  if (port !== undefined) config.port = integer(label('port'), port, 0, 65535);
  const host = one(pick('host'));
  if (host !== undefined) config.host = host;
  const dataDir = one(pick('dataDir'));
  if (dataDir !== undefined) config.dataDir = dataDir;
  const rulesDir = one(pick('rulesDir'));
  if (rulesDir !== undefined) config.rulesDir = rulesDir;
  const token = one(pick('token'));
  if (token !== undefined) config.token = token;
  const maxBody = one(pick('maxBodyBytes'));
  if (maxBody !== undefined) config.maxBodyBytes = parseByteSize(label('maxBodyBytes'), maxBody);
  const queue = one(pick('queueRecords'));
  if (queue !== undefined) config.queueRecords = integer(label('queueRecords'), queue, 1, 100_000_000);
  const resolveAfter = one(pick('resolveAfterMs'));
  if (resolveAfter !== undefined) config.resolveAfterMs = parseDuration(label('resolveAfterMs'), resolveAfter);
  const logLevel = one(pick('logLevel'));
  if (logLevel !== undefined) {
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
      throw new ConfigError(`${label('logLevel')}: expected one of fatal, error, warn, info, debug, trace, silent, got "${logLevel}"`);
    }
    config.logLevel = logLevel;
  }
  const forward = pick('forwardUrls');
  const urls = forward === undefined ? [] : Array.isArray(forward) ? forward : [forward];
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`${label('forwardUrls')}: not a URL: "${url}"`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ConfigError(`${label('forwardUrls')}: only http and https URLs are supported, got "${url}"`);
    }
    config.forwardUrls.push(url);
  }
  return config;
}
