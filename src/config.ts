/**
 * Settings for `leakwatch serve`, as one declarative table: each row names a setting's flag,
 * environment variable, type, default and help. The command line (`--help` included), the
 * environment and the README's configuration table are all made from it (a test compares the
 * README with `renderConfigTable()`). Defaults, overridden by LEAKWATCH_* variables, overridden by
 * flags; every value is validated once here, so the rest of the program can trust its Config.
 */
import { readFileSync } from 'node:fs';
import { parseForwardTarget, TARGET_DEFAULTS, TargetSpecError, type ForwardTarget } from './forward/target.js';
import { parseDirectMemoryMax, type DirectMemoryMax } from './memory/limits.js';
import { formatBytes, formatDuration, parseBytes, parseDuration } from './units.js';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  rulesDir: string;
  /** Where events go on to (`--forward-url`, parsed); give-up ages resolved. */
  forwardTargets: ForwardTarget[];
  /** Bytes of undelivered events the outbox holds before ingest answers 503. */
  forwardOutboxBytes: number;
  /** Longest an outbox entry is kept, dead letters included; no target gives up later than this. */
  forwardOutboxAgeMs: number;
  /** Admin token: every route but /healthz and /readyz needs it (or readToken, for reading). */
  token: string | undefined;
  /** Read-only token: GET/HEAD routes accept it; ingest and state changes do not. */
  readToken: string | undefined;
  /** Largest request body, as received and after each Content-Encoding is undone. */
  maxBodyBytes: number;
  /** Records one body may hold. */
  maxRecords: number;
  /** Longest line of a text or NDJSON body, and largest single value of a JSON or msgpack body. */
  maxLineBytes: number;
  /** Longest message of one record. */
  maxMessageBytes: number;
  /** Deepest nesting of arrays and objects inside one record. */
  maxDepth: number;
  /** Largest zstd window a frame may ask for. */
  maxZstdWindowBytes: number;
  /** Request body bytes held across all requests at once (received and decompressed). */
  maxInflightBytes: number;
  /** Longest pause while a request body is uploading. */
  bodyTimeoutMs: number;
  /** Longest time for a whole request to arrive, headers and body. */
  requestTimeoutMs: number;
  /** Records the engine's input queue holds before ingest answers 503. */
  queueRecords: number;
  /** Bytes (estimated) the engine's input queue holds before ingest answers 503. */
  queueBytes: number;
  /** Streams holding an open group at once; past it the least recently active stream's group closes. */
  maxOpenStreams: number;
  /** Bytes of text held in open groups at once; past it the least recently active stream's group closes. */
  maxOpenBytes: number;
  /** Bytes (estimated) of records held for the reorder window; past it the records due soonest are grouped early. */
  maxHeldBytes: number;
  /** Worker threads that decode request bodies; 0 decodes on the main thread. */
  decodeThreads: number;
  /** How far (percent) V8 lets the heap grow past what a full collection left before the next one; 0 leaves it to V8. */
  heapGrowthPercent: number;
  /** Quiet period (event time) after which an open incident resolves. */
  resolveAfterMs: number;
  /** Direct-memory limits of processes that never reported one, per service (or host/service). */
  directMemoryMax: DirectMemoryMax[];
  /** Event time the direct-memory trend looks back over. */
  directMemoryWindowMs: number;
  /** Warn when direct memory is predicted to run out within this much time. */
  directMemoryHorizonMs: number;
  /** Warn when a process's direct memory passes this share of its limit (0-1). */
  directMemoryRatio: number;
  logLevel: string;
  /** `single`: one process does everything (SQLite by default); `ingest` / `engine`: a node of the scale-out mode. */
  role: Role;
  /** PostgreSQL connection URL: the shared store (required by the scale-out roles; a single process may use it too). */
  postgresUrl: string | undefined;
  /** NATS server URLs (comma-separated) of the JetStream that carries records from ingest to engine nodes. */
  natsUrl: string | undefined;
  /** Partitions of the record stream: fixed for the life of the stream, the same on every node. */
  partitions: number;
  /** The partitions an engine node consumes (`0-7,12`); undefined: all of them. */
  enginePartitions: number[] | undefined;
}

export const ROLES = ['single', 'ingest', 'engine'] as const;
export type Role = (typeof ROLES)[number];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type SettingType = 'port' | 'text' | 'path' | 'urls' | 'secret' | 'secret-file' | 'count' | 'size' | 'duration' | 'level' | 'limits' | 'ratio' | 'role' | 'ranges';

/** Settings that are read from a file (the secret itself stays out of `ps` and the environment). */
type FileSetting = 'tokenFile' | 'readTokenFile';
export type SettingKey = keyof Config | FileSetting;

export interface Setting {
  key: SettingKey;
  /** `--data-dir` */
  flag: string;
  /** What the flag's argument looks like in `--help`: `--data-dir <dir>`. */
  placeholder: string;
  env: string;
  type: SettingType;
  /** As written in `--help` and the README; parsed with the setting's type for the built-in default. */
  default: string | undefined;
  /** Extra words after the default in the README (where the default differs by context). */
  defaultNote?: string;
  help: string;
  /** Bounds of counts, sizes and durations. */
  min?: number;
  max?: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const SETTINGS: readonly Setting[] = [
  { key: 'port', flag: '--port', placeholder: 'port', env: 'LEAKWATCH_PORT', type: 'port', default: '8080', help: 'port to listen on' },
  {
    key: 'host', flag: '--host', placeholder: 'address', env: 'LEAKWATCH_HOST', type: 'text', default: '127.0.0.1', defaultNote: '(the Docker image: 0.0.0.0)',
    help: 'address to bind; a non-loopback address without a token is warned about at start-up',
  },
  { key: 'dataDir', flag: '--data-dir', placeholder: 'dir', env: 'LEAKWATCH_DATA_DIR', type: 'path', default: './data', help: 'where the SQLite store, the regex-safety cache and the last good rule set live' },
  { key: 'rulesDir', flag: '--rules', placeholder: 'dir', env: 'LEAKWATCH_RULES', type: 'path', default: './rules', defaultNote: '(else the rules shipped in the package)', help: 'rule folder' },
  {
    key: 'forwardTargets', flag: '--forward-url', placeholder: 'url', env: 'LEAKWATCH_FORWARD_URL', type: 'urls', default: undefined,
    help: 'forward events here, at least once (repeatable; the variable takes a comma-separated list); the format comes from the path or #format=, options go in the fragment (see Forwarding)',
  },
  {
    key: 'forwardOutboxBytes', flag: '--forward-outbox-bytes', placeholder: 'size', env: 'LEAKWATCH_FORWARD_OUTBOX_BYTES', type: 'size', default: '256MiB', min: 4096, max: 1024 ** 4,
    help: 'undelivered events the outbox holds for all targets; at the cap ingest answers 503 + Retry-After until a target catches up (dead letters make room first)',
  },
  {
    key: 'forwardOutboxAgeMs', flag: '--forward-outbox-age', placeholder: 'duration', env: 'LEAKWATCH_FORWARD_OUTBOX_AGE', type: 'duration', default: '7d', min: 60_000, max: 365 * 86_400_000,
    help: 'longest an event stays in the outbox, as a dead letter too (older ones are dropped, logged and counted); no target gives up later',
  },
  {
    key: 'token', flag: '--token', placeholder: 'token', env: 'LEAKWATCH_TOKEN', type: 'secret', default: undefined,
    help: 'admin token: every route but /healthz and /readyz needs it (Bearer, or Basic with it as password); prefer the variable or --token-file, a flag shows in ps',
  },
  { key: 'tokenFile', flag: '--token-file', placeholder: 'file', env: 'LEAKWATCH_TOKEN_FILE', type: 'secret-file', default: undefined, help: 'read the admin token from this file' },
  {
    key: 'readToken', flag: '--read-token', placeholder: 'token', env: 'LEAKWATCH_READ_TOKEN', type: 'secret', default: undefined,
    help: 'read-only token: GET routes accept it; ingest, ack, resolve and reload need the admin token',
  },
  { key: 'readTokenFile', flag: '--read-token-file', placeholder: 'file', env: 'LEAKWATCH_READ_TOKEN_FILE', type: 'secret-file', default: undefined, help: 'read the read-only token from this file' },
  {
    key: 'maxBodyBytes', flag: '--max-body-bytes', placeholder: 'size', env: 'LEAKWATCH_MAX_BODY_BYTES', type: 'size', default: '32MiB', min: 1024, max: 1024 ** 3,
    help: 'largest request body, as sent and after decompression (413 past it)',
  },
  { key: 'maxRecords', flag: '--max-records', placeholder: 'n', env: 'LEAKWATCH_MAX_RECORDS', type: 'count', default: '250000', min: 1, max: 10_000_000,
    help: 'records one body may hold (413 past it); a 10 MB batch of 40-byte lines stays under it' },
  {
    key: 'maxLineBytes', flag: '--max-line-bytes', placeholder: 'size', env: 'LEAKWATCH_MAX_LINE_BYTES', type: 'size', default: '1MiB', min: 256, max: 1024 ** 3,
    help: 'longest line of a text or NDJSON body, largest value of a JSON or msgpack body; longer ones are kept cut, as raw text, counted malformed',
  },
  {
    key: 'maxMessageBytes', flag: '--max-message-bytes', placeholder: 'size', env: 'LEAKWATCH_MAX_MESSAGE_BYTES', type: 'size', default: '256KiB', min: 256, max: 1024 ** 3,
    help: 'longest message of one record; a longer one is cut and the record counted malformed',
  },
  {
    key: 'maxDepth', flag: '--max-depth', placeholder: 'n', env: 'LEAKWATCH_MAX_DEPTH', type: 'count', default: '32', min: 2, max: 1000,
    help: 'deepest nesting of objects and arrays in one record; a deeper record is kept as raw text, counted malformed',
  },
  {
    key: 'maxZstdWindowBytes', flag: '--max-zstd-window', placeholder: 'size', env: 'LEAKWATCH_MAX_ZSTD_WINDOW', type: 'size', default: '8MiB', min: 1024, max: 1024 ** 3,
    help: 'largest window a zstd frame may ask for (400 past it)',
  },
  {
    key: 'maxInflightBytes', flag: '--max-inflight-bytes', placeholder: 'size', env: 'LEAKWATCH_MAX_INFLIGHT_BYTES', type: 'size', default: '256MiB', min: 1024, max: 64 * 1024 ** 3,
    help: 'request bytes held at once across all requests, received and decompressed (503 + Retry-After past it)',
  },
  {
    key: 'bodyTimeoutMs', flag: '--body-timeout', placeholder: 'duration', env: 'LEAKWATCH_BODY_TIMEOUT', type: 'duration', default: '10s', min: 100, max: 3_600_000,
    help: 'longest pause in a body upload before the request is answered 408 and closed',
  },
  {
    key: 'requestTimeoutMs', flag: '--request-timeout', placeholder: 'duration', env: 'LEAKWATCH_REQUEST_TIMEOUT', type: 'duration', default: '60s', min: 1000, max: 3_600_000,
    help: 'longest time for a whole request to arrive before it is answered 408 and closed',
  },
  {
    key: 'queueRecords', flag: '--queue-records', placeholder: 'n', env: 'LEAKWATCH_QUEUE_RECORDS', type: 'count', default: '500000', min: 1, max: 100_000_000,
    help: 'records the engine queue holds before ingest answers 503 + Retry-After',
  },
  {
    key: 'queueBytes', flag: '--queue-bytes', placeholder: 'size', env: 'LEAKWATCH_QUEUE_BYTES', type: 'size', default: '64MiB', min: 1024, max: 64 * 1024 ** 3,
    help: 'bytes (estimated) the engine queue holds before ingest answers 503 + Retry-After',
  },
  {
    key: 'maxOpenStreams', flag: '--max-open-streams', placeholder: 'n', env: 'LEAKWATCH_MAX_OPEN_STREAMS', type: 'count', default: '100000', min: 1, max: 100_000_000,
    help: 'streams (host + service + pid) with an open group at once; past it the least recently active one is closed early',
  },
  {
    key: 'maxOpenBytes', flag: '--max-open-bytes', placeholder: 'size', env: 'LEAKWATCH_MAX_OPEN_BYTES', type: 'size', default: '64MiB', min: 1024, max: 64 * 1024 ** 3,
    help: 'text held in open groups at once; past it the least recently active stream\'s group is closed early',
  },
  {
    key: 'maxHeldBytes', flag: '--max-held-bytes', placeholder: 'size', env: 'LEAKWATCH_MAX_HELD_BYTES', type: 'size', default: '64MiB', min: 1024, max: 64 * 1024 ** 3,
    help: 'records (estimated bytes) held for the reorder window; past it the records due soonest are grouped early (the window shrinks under a flood)',
  },
  {
    key: 'decodeThreads', flag: '--decode-threads', placeholder: 'n', env: 'LEAKWATCH_DECODE_THREADS', type: 'count', default: '1', min: 0, max: 64,
    help: 'worker threads that decompress and decode request bodies, beside the main thread (grouping, store, HTTP); 0 decodes on the main thread',
  },
  {
    key: 'heapGrowthPercent', flag: '--heap-growth', placeholder: 'percent', env: 'LEAKWATCH_HEAP_GROWTH', type: 'count', default: '50', min: 0, max: 1000,
    help: 'how far the JavaScript heap may grow past what the last full collection left before the next one (V8\'s --heap-growing-percent); 0 leaves it to V8, which lets it grow up to 4x (see Memory)',
  },
  {
    key: 'resolveAfterMs', flag: '--resolve-after', placeholder: 'duration', env: 'LEAKWATCH_RESOLVE_AFTER', type: 'duration', default: '30m', min: 1000, max: 365 * 86_400_000,
    help: 'quiet period, in event time, after which an incident resolves',
  },
  {
    key: 'directMemoryMax', flag: '--direct-memory-max', placeholder: 'limits', env: 'LEAKWATCH_DIRECT_MEMORY_MAX', type: 'limits', default: undefined,
    help: "direct-memory limit of processes that never reported one (-XX:MaxDirectMemorySize, -Dio.netty.maxDirectMemory), as 'SERVICE=SIZE,HOST/SERVICE=SIZE,*=SIZE'; a limit an OutOfDirectMemoryError reported wins, and holds for the successors on its host and service",
  },
  {
    key: 'directMemoryWindowMs', flag: '--direct-memory-window', placeholder: 'duration', env: 'LEAKWATCH_DIRECT_MEMORY_WINDOW', type: 'duration', default: '6h', min: 60_000, max: 30 * 86_400_000,
    help: 'event time the direct-memory trend looks back over (its floor is the minimum of each twelfth)',
  },
  {
    key: 'directMemoryHorizonMs', flag: '--direct-memory-horizon', placeholder: 'duration', env: 'LEAKWATCH_DIRECT_MEMORY_HORIZON', type: 'duration', default: '24h', min: 60_000, max: 365 * 86_400_000,
    help: 'open a direct-memory-trend incident when the rising floor is predicted to reach the limit within this time',
  },
  {
    key: 'directMemoryRatio', flag: '--direct-memory-ratio', placeholder: 'ratio', env: 'LEAKWATCH_DIRECT_MEMORY_RATIO', type: 'ratio', default: '90%',
    help: 'open a direct-memory-trend incident (critical) when a process\'s direct memory passes this share of its limit (90% or 0.9)',
  },
  { key: 'logLevel', flag: '--log-level', placeholder: 'level', env: 'LEAKWATCH_LOG_LEVEL', type: 'level', default: 'info', help: LOG_LEVELS.join('|') },
  {
    key: 'role', flag: '--role', placeholder: 'role', env: 'LEAKWATCH_ROLE', type: 'role', default: 'single',
    help: 'single: one process does everything; ingest: an HTTP sink that publishes to NATS JetStream; engine: groups and classifies partitions from JetStream into PostgreSQL (see Scaling out)',
  },
  {
    key: 'postgresUrl', flag: '--postgres-url', placeholder: 'url', env: 'LEAKWATCH_POSTGRES_URL', type: 'secret', default: undefined,
    help: 'PostgreSQL store shared by every node (postgresql://user:password@host/db), instead of SQLite in --data-dir; required by --role ingest and engine; prefer the variable, a flag shows in ps',
  },
  {
    key: 'natsUrl', flag: '--nats-url', placeholder: 'urls', env: 'LEAKWATCH_NATS_URL', type: 'text', default: undefined,
    help: 'NATS servers with JetStream (nats://host:4222, comma-separated) that carry records from ingest to engine nodes; required by --role ingest and engine',
  },
  {
    key: 'partitions', flag: '--partitions', placeholder: 'n', env: 'LEAKWATCH_PARTITIONS', type: 'count', default: '16', min: 1, max: 1024,
    help: 'partitions of the record stream (a stable hash of host + service + pid); the same on every node and for the life of the stream',
  },
  {
    key: 'enginePartitions', flag: '--engine-partitions', placeholder: 'list', env: 'LEAKWATCH_ENGINE_PARTITIONS', type: 'ranges', default: undefined, defaultNote: '(all)',
    help: 'the partitions an engine node consumes, e.g. 0-7 or 0,3,8-11; each partition must be given to exactly one engine node',
  },
];

/** Raw values as strings, from flags or the environment (commander gives strings too). */
export type RawSettings = Partial<Record<SettingKey, string | string[] | undefined>>;

export function settingOf(key: SettingKey): Setting {
  const setting = SETTINGS.find((candidate) => candidate.key === key);
  if (!setting) throw new Error(`no setting ${key}`);
  return setting;
}

export function envName(key: SettingKey): string {
  return settingOf(key).env;
}

function label(setting: Setting, source: 'flag' | 'env'): string {
  return source === 'flag' ? setting.flag : setting.env;
}

function parseCount(setting: Setting, where: string, value: string): number {
  if (!/^\s*\d+\s*$/.test(value)) throw new ConfigError(`${where}: expected a whole number, got "${value}"`);
  return withinBounds(setting, where, Number(value), String);
}

function withinBounds(setting: Setting, where: string, value: number, show: (n: number) => string): number {
  if ((setting.min !== undefined && value < setting.min) || (setting.max !== undefined && value > setting.max)) {
    throw new ConfigError(`${where}: must be between ${show(setting.min ?? 0)} and ${show(setting.max ?? Number.MAX_SAFE_INTEGER)}, got ${show(value)}`);
  }
  return value;
}

function readSecretFile(where: string, file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${where}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  // Files written by `echo`, Kubernetes secrets and Docker secrets end with a newline or none.
  const secret = text.replace(/[\r\n]+$/, '');
  if (secret === '' || /[\r\n]/.test(secret)) throw new ConfigError(`${where}: ${file} must hold the token on one line`);
  return secret;
}

/** One setting's value from its text; `where` names the flag or variable in errors. */
function parseValue(setting: Setting, where: string, raw: string | string[]): unknown {
  const text = Array.isArray(raw) ? (raw[raw.length - 1] as string) : raw;
  switch (setting.type) {
    case 'port':
      if (!/^\s*\d+\s*$/.test(text) || Number(text) > 65535) throw new ConfigError(`${where}: expected a port number 0-65535, got "${text}"`);
      return Number(text);
    case 'text':
    case 'path':
      if (text === '') throw new ConfigError(`${where}: must not be empty`);
      return text;
    case 'secret':
      if (text.trim() === '') throw new ConfigError(`${where}: must not be empty`);
      return text;
    case 'secret-file':
      return readSecretFile(where, text);
    case 'count':
      return parseCount(setting, where, text);
    case 'size': {
      const bytes = parseBytes(text);
      if (bytes === null) throw new ConfigError(`${where}: expected a size such as 32MiB or 1048576, got "${text}"`);
      return withinBounds(setting, where, bytes, formatBytes);
    }
    case 'duration': {
      const ms = parseDuration(text);
      if (ms === null) throw new ConfigError(`${where}: expected a duration such as 2s, 30m or 1h, got "${text}"`);
      return withinBounds(setting, where, ms, formatDuration);
    }
    case 'limits':
      try {
        return parseDirectMemoryMax(Array.isArray(raw) ? raw.join(',') : raw);
      } catch (error) {
        throw new ConfigError(`${where}: ${(error as Error).message}`);
      }
    case 'ratio': {
      const match = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(text);
      const ratio = match ? Number(match[1]) / (match[2] === '%' ? 100 : 1) : NaN;
      if (!(ratio > 0 && ratio <= 1)) throw new ConfigError(`${where}: expected a share of the limit such as 90% or 0.9, got "${text}"`);
      return ratio;
    }
    case 'level':
      if (!LOG_LEVELS.includes(text)) throw new ConfigError(`${where}: expected one of ${LOG_LEVELS.join(', ')}, got "${text}"`);
      return text;
    case 'role':
      if (!(ROLES as readonly string[]).includes(text)) throw new ConfigError(`${where}: expected one of ${ROLES.join(', ')}, got "${text}"`);
      return text;
    case 'ranges':
      return parseRanges(where, text);
    case 'urls': {
      const urls = (Array.isArray(raw) ? raw : [raw]).flatMap((item) => item.split(/[\s,]+/)).filter(Boolean);
      const targets = urls.map((url) => {
        try {
          return parseForwardTarget(url);
        } catch (error) {
          if (error instanceof TargetSpecError) throw new ConfigError(`${where}: ${withoutCredentials(url)}: ${error.message}`);
          throw error;
        }
      });
      const names = new Set<string>();
      for (const target of targets) {
        if (names.has(target.name)) throw new ConfigError(`${where}: two targets are named ${target.name}; give one a #name=`);
        names.add(target.name);
      }
      return targets;
    }
  }
}

/** `0-7,12` → [0, 1, …, 7, 12]: sorted, each once. */
function parseRanges(where: string, text: string): number[] {
  const numbers = new Set<number>();
  for (const part of text.split(',').map((item) => item.trim())) {
    const match = /^(\d{1,4})(?:-(\d{1,4}))?$/.exec(part);
    if (!match) throw new ConfigError(`${where}: expected numbers and ranges such as 0-7,12, got "${text}"`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new ConfigError(`${where}: ${part} ends before it starts`);
    for (let n = first; n <= last; n++) numbers.add(n);
  }
  return [...numbers].sort((a, b) => a - b);
}

/** A URL as error messages may show it: its userinfo blanked. */
function withoutCredentials(text: string): string {
  try {
    const url = new URL(text);
    if (url.username === '' && url.password === '') return text;
    url.username = '***';
    url.password = '';
    return url.href;
  } catch {
    return text.replace(/\/\/[^/@]*@/, '//***@');
  }
}

function builtInDefaults(): Config {
  const config: Record<string, unknown> = { forwardTargets: [], directMemoryMax: [], token: undefined, readToken: undefined, postgresUrl: undefined, natsUrl: undefined, enginePartitions: undefined };
  for (const setting of SETTINGS) {
    if (setting.default !== undefined) config[setting.key] = parseValue(setting, `default of ${setting.flag}`, setting.default);
  }
  return config as unknown as Config;
}

export const DEFAULTS: Readonly<Config> = Object.freeze(builtInDefaults());

/** A secret given twice (value and file) is a mistake to report, not to resolve silently. */
const SECRET_FILES: ReadonlyArray<readonly [keyof Config, FileSetting]> = [
  ['token', 'tokenFile'],
  ['readToken', 'readTokenFile'],
];

/** Flags win over the environment, which wins over the defaults. */
export function resolveConfig(flags: RawSettings, env: NodeJS.ProcessEnv = process.env): Config {
  const config: Record<string, unknown> = { ...DEFAULTS, forwardTargets: [], directMemoryMax: [...DEFAULTS.directMemoryMax] };
  const sources = new Map<SettingKey, string>();
  for (const setting of SETTINGS) {
    const fromFlag = flags[setting.key];
    const fromEnv = env[setting.env];
    let value: unknown;
    if (fromFlag !== undefined) {
      value = parseValue(setting, label(setting, 'flag'), fromFlag);
      sources.set(setting.key, label(setting, 'flag'));
    } else if (fromEnv !== undefined && fromEnv !== '') {
      value = parseValue(setting, label(setting, 'env'), fromEnv);
      sources.set(setting.key, label(setting, 'env'));
    } else {
      continue;
    }
    const secretOf = SECRET_FILES.find(([, file]) => file === setting.key);
    config[secretOf ? secretOf[0] : setting.key] = value;
  }
  for (const [secret, file] of SECRET_FILES) {
    const direct = sources.get(secret);
    const viaFile = sources.get(file);
    if (direct !== undefined && viaFile !== undefined) throw new ConfigError(`${direct} and ${viaFile}: give the token one way, not both`);
  }
  if (config.readToken !== undefined && config.readToken === config.token) {
    throw new ConfigError('the read-only token must differ from the admin token');
  }
  if (config.readToken !== undefined && config.token === undefined) {
    throw new ConfigError('a read-only token needs an admin token too (--token-file or LEAKWATCH_TOKEN)');
  }
  const resolved = config as unknown as Config;
  resolved.forwardTargets = resolved.forwardTargets.map((target) => withGiveUp(target, resolved.forwardOutboxAgeMs));
  checkScaleOut(resolved);
  return resolved;
}

/** The scale-out roles need both shared services; partitions must exist. */
function checkScaleOut(config: Config): void {
  if (config.role !== 'single') {
    if (config.natsUrl === undefined) throw new ConfigError(`--role ${config.role} needs --nats-url (LEAKWATCH_NATS_URL)`);
    if (config.postgresUrl === undefined) throw new ConfigError(`--role ${config.role} needs --postgres-url (LEAKWATCH_POSTGRES_URL)`);
  }
  const outside = config.enginePartitions?.find((partition) => partition >= config.partitions);
  if (outside !== undefined) throw new ConfigError(`--engine-partitions: partition ${outside} does not exist (--partitions ${config.partitions} numbers them 0-${config.partitions - 1})`);
  if (config.enginePartitions !== undefined && config.role !== 'engine') throw new ConfigError('--engine-partitions is for --role engine');
}

/** A target gives up after its own give-up=, else after 24 h, never after the outbox age. */
function withGiveUp(target: ForwardTarget, outboxAgeMs: number): ForwardTarget {
  if (target.giveUpMs !== undefined && target.giveUpMs > outboxAgeMs) {
    throw new ConfigError(`--forward-url ${target.name}: give-up (${formatDuration(target.giveUpMs)}) is longer than --forward-outbox-age (${formatDuration(outboxAgeMs)})`);
  }
  return { ...target, giveUpMs: target.giveUpMs ?? Math.min(TARGET_DEFAULTS.giveUpMs, outboxAgeMs) };
}

/** The flag with its argument, as `--help` shows it. */
export function flagUsage(setting: Setting): string {
  return `${setting.flag} <${setting.placeholder}>`;
}

/** The help text of one flag: what it does, its default and its variable. */
export function flagHelp(setting: Setting): string {
  const byDefault = setting.default === undefined ? 'none' : `${setting.default}${setting.defaultNote ? ` ${setting.defaultNote}` : ''}`;
  return `${setting.help} (default: ${byDefault}; ${setting.env})`;
}

function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The README's configuration table, made from SETTINGS. */
export function renderConfigTable(): string {
  const rows = ['| flag | environment | default | meaning |', '|---|---|---|---|'];
  for (const setting of SETTINGS) {
    const byDefault = setting.default === undefined ? 'none' : `${setting.default}${setting.defaultNote ? ` ${setting.defaultNote}` : ''}`;
    rows.push(`| \`${flagUsage(setting)}\` | \`${setting.env}\` | ${markdownCell(byDefault)} | ${markdownCell(setting.help)} |`);
  }
  return rows.join('\n');
}
