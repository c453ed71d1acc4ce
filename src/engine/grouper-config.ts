/** How one kind of stream is cut into multi-line records; compiled from a `groupers:` entry. */
export interface GrouperConfig {
  name: string;
  /** Globs on the stream's service; the first grouper whose globs match a stream is used for it. */
  services: string[];
  maxLines: number;
  maxBytes: number;
  /** An open record closes after this many ms without a new line on its stream. */
  silenceMs: number;
  /** Extra header regexes, beside the built-in header checks. */
  start: RegExp[];
  /** Extra continuation regexes, beside the built-in continuation checks. */
  continue: RegExp[];
}

export const DEFAULT_GROUPER: GrouperConfig = {
  name: 'jvm',
  services: ['*'],
  maxLines: 500,
  maxBytes: 64 * 1024,
  silenceMs: 2000,
  start: [],
  continue: [],
};

/** Bounds of the open-group cache shared by all streams (evictions close groups, never drop them). */
export interface OpenGroupLimits {
  maxStreams: number;
  maxBytes: number;
}

export const DEFAULT_OPEN_GROUP_LIMITS: OpenGroupLimits = { maxStreams: 10_000, maxBytes: 64 * 1024 * 1024 };
