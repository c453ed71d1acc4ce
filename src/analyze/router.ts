/**
 * Deals the lines of analyze's input to its shards, in the main thread. Streams are dealt by
 * origin (host + service: a new pid of a process closes its old pid's record, so a process's pids
 * stay together) in the order they first appear, each to the shard that has been given the fewest
 * lines so far. A shard is sent the byte range of each of its lines in the chunk and the line's
 * number in the whole input, which orders what it closes (analyze.ts merges on it).
 */
import { isAscii } from 'node:buffer';
import { detached } from '../text/strings.js';
import type { Origin } from '../ingest/journald-prefix.js';
import { headerTimeRead, readHeaderAt } from '../ingest/line-layout.js';
import { prefixedLineTimeMs, prefixSourceUs } from '../ingest/normalize.js';
import { LineReader } from './lines.js';

/**
 * The lines of one chunk dealt to one shard. Per line, `ranges` holds LINE_FIELDS numbers: byte
 * start, byte end, line number in the chunk, and, for a journald line whose origin was seen
 * before (in an ASCII chunk), where its message starts (bytes from the line's start) and the
 * origin's number with two flags (PARSED_*); `times` holds two numbers per line, the record's
 * time and its source clock (LogRecord's `time` and `sourceUs`; NaN for none). A line without a
 * number (NOT_PARSED) is read by the shard.
 */
export interface ShardLines {
  ranges: Uint32Array;
  times: Float64Array;
  count: number;
  /** Origins first sent with this chunk: [number, host, service, pid] each. */
  origins: Array<[number, string, string, string]>;
}

export const LINE_FIELDS = 5;
export const NOT_PARSED = 0xffffffff;
/** The message is a log record's header (LogRecord.header); the prefix's time is a time since boot. */
export const PARSED_HEADER = 1;
export const PARSED_BOOT = 2;
/** Origins numbered and sent to shards at most; later ones are read by the shards themselves. */
const MAX_NUMBERED_ORIGINS = 1 << 16;

/**
 * Decoded at a time: a young string, and a small one. V8 doubles this thread's young generation
 * (up to 2 x 16 MiB) each time the bytes that outlived a scavenge add up to its size, and the piece
 * being read outlives every scavenge that comes while it is: with 64 KiB pieces the heap went from
 * 16 to 40 MiB over 10M lines (RSS 86 -> 121 MiB), with 4 KiB it stays at 16 MiB, at the same speed.
 */
const DECODED_PIECE_BYTES = 4 * 1024;
/** Origins dealt out one by one; past this many, a new origin goes by a hash of its name (nothing more is kept). */
const MAX_DEALT_ORIGINS = 65_536;

export class Router {
  /** Lines of the input so far. */
  lines = 0;
  private readonly reader: LineReader;
  /** host → service → shard. */
  private readonly owners = new Map<string, Map<string, number>>();
  private dealt = 0;
  /** Origins numbered for the shards (each sent once, to the shard its process is dealt to), with that shard. */
  private readonly routes = new Map<Origin, { number: number; owner: number }>();
  /** Lines given to each shard so far. */
  private readonly loads: number[];
  /**
   * Line arrays the shards are done with, filled again by later chunks as the chunk slots are: a
   * chunk's arrays (~400 KB for 512 KiB of input) made anew each time were freed only when a shard
   * thread collected garbage, and this thread's malloc heap reached 17–49 MiB with those waiting.
   */
  private readonly spareLines: Array<Pick<ShardLines, 'ranges' | 'times'>> = [];

  constructor(
    private readonly count: number,
    private readonly receivedAt: number,
  ) {
    this.reader = new LineReader(receivedAt);
    this.loads = new Array<number>(count).fill(0);
  }

  beginFile(fallbackService: string): void {
    this.reader.beginFile(fallbackService);
  }

  /** A shard is done with a chunk's line arrays: a later chunk fills them again. */
  reuse(ranges: Uint32Array, times: Float64Array): void {
    // In flight at most: MAX_CHUNKS_IN_FLIGHT chunks' arrays per shard, and the ones being filled.
    if (this.spareLines.length < 4 * this.count) this.spareLines.push({ ranges, times });
  }

  private emptyLines(estimate: number): ShardLines {
    const spare = this.spareLines.pop();
    // push() grows the two together: times holds 2 per line where ranges holds LINE_FIELDS.
    const reused = spare !== undefined && spare.ranges.length >= estimate * LINE_FIELDS;
    // One literal for fresh and reused arrays: with a spread of the spare for the reused ones, V8
    // threw out routePiece and push ("wrong map") and compiled them again four times each early in a run.
    return {
      ranges: reused ? spare.ranges : new Uint32Array(estimate * LINE_FIELDS),
      times: reused ? spare.times : new Float64Array(estimate * 2),
      count: 0,
      origins: [],
    };
  }

  /**
   * Deals the lines of a chunk (whole lines at the start of `bytes`); `ascii` says whether the chunk
   * is all ASCII (then a line's characters are its bytes). Empty lines and journalctl's markers
   * carry no log data and go nowhere, though they are counted.
   */
  route(bytes: Buffer, length: number): { shards: ShardLines[]; firstLine: number; ascii: boolean } {
    const firstLine = this.lines;
    const estimate = Math.max(64, Math.ceil(length / 48));
    const shards: ShardLines[] = Array.from({ length: this.count }, () => this.emptyLines(estimate));
    const ascii = isAscii(bytes.subarray(0, length));
    let pieceStart = 0;
    while (pieceStart < length) {
      let pieceEnd = pieceStart + DECODED_PIECE_BYTES >= length ? -1 : bytes.indexOf(10, pieceStart + DECODED_PIECE_BYTES);
      pieceEnd = pieceEnd < 0 || pieceEnd >= length ? length : pieceEnd + 1;
      this.routePiece(ascii ? bytes.toString('latin1', pieceStart, pieceEnd) : bytes.toString('utf8', pieceStart, pieceEnd), pieceStart, ascii, shards, firstLine);
      pieceStart = pieceEnd;
    }
    return { shards, firstLine, ascii };
  }

  private routePiece(text: string, byteBase: number, ascii: boolean, shards: ShardLines[], firstLine: number): void {
    const length = text.length;
    let start = 0;
    // Outside ASCII, a character's offset is not its byte's: counted as the piece is walked.
    let byteAt = byteBase;
    let charAt = 0;
    while (start < length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = length;
      const line = this.lines++;
      const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
      if (stop > start && this.reader.readOrigin(text, start, stop)) {
        // A remembered origin keeps its shard (its host and service do): looked up by the object, not its names.
        const known = ascii ? this.reader.origin : null;
        const routed = known === null ? undefined : this.routes.get(known);
        const owner = routed !== undefined ? routed.owner : this.count > 1 ? this.ownerOf(this.reader.host, this.reader.service) : 0;
        if (routed !== undefined) this.loads[owner] = (this.loads[owner] as number) + 1;
        let byteStart: number;
        let byteStop: number;
        if (ascii) {
          byteStart = byteBase + start;
          byteStop = byteBase + stop;
        } else {
          byteAt += Buffer.byteLength(text.slice(charAt, start));
          byteStart = byteAt;
          byteStop = byteAt + Buffer.byteLength(text.slice(start, stop));
          byteAt = byteStop;
          charAt = stop;
        }
        const lines = shards[owner] as ShardLines;
        // Outside ASCII a shard reads the line itself (the message's offset would be in bytes, not characters).
        const number = known === null ? undefined : (routed?.number ?? this.number(known, owner, lines));
        if (number !== undefined) {
          // The message's header is read here too (its time dates the record, and the engine is told it is one).
          const prefix = this.reader.prefix;
          const header = readHeaderAt(text, prefix.messageStart, stop, prefix.timeMs ?? this.receivedAt);
          const time = prefixedLineTimeMs(prefix, headerTimeRead) ?? Number.NaN;
          const flags = (header ? PARSED_HEADER : 0) | (prefix.bootUs !== undefined ? PARSED_BOOT : 0);
          push(lines, byteStart, byteStop, line - firstLine, prefix.messageStart - start, number * 4 + flags, time, prefixSourceUs(prefix) ?? Number.NaN);
        } else {
          push(lines, byteStart, byteStop, line - firstLine, 0, NOT_PARSED, Number.NaN, Number.NaN);
        }
      }
      start = end + 1;
    }
  }

  /** Numbers an origin and sends it with this chunk to the shard its lines go to; undefined once enough are numbered. */
  private number(origin: Origin, owner: number, lines: ShardLines): number | undefined {
    if (this.routes.size >= MAX_NUMBERED_ORIGINS) return undefined;
    const number = this.routes.size;
    this.routes.set(origin, { number, owner });
    lines.origins.push([number, origin.host, origin.service, origin.pid]);
    return number;
  }

  private ownerOf(host: string, service: string): number {
    let byService = this.owners.get(host);
    let owner = byService?.get(service);
    if (owner === undefined) {
      owner = this.deal();
      if (owner < 0) owner = hashOwner(host, service, this.count);
      else {
        if (byService === undefined) {
          byService = new Map();
          // Keys outlive the chunk they were read from: copies, so that they do not pin it.
          this.owners.set(detached(host), byService);
        }
        byService.set(detached(service), owner);
      }
    }
    this.loads[owner] = (this.loads[owner] as number) + 1;
    return owner;
  }

  /** The shard with the fewest lines so far (the lowest index among equals); -1 once enough origins were dealt. */
  private deal(): number {
    if (this.dealt >= MAX_DEALT_ORIGINS) return -1;
    this.dealt++;
    let best = 0;
    for (let index = 1; index < this.loads.length; index++) if ((this.loads[index] as number) < (this.loads[best] as number)) best = index;
    return best;
  }
}

function push(lines: ShardLines, start: number, stop: number, line: number, messageOffset: number, parsed: number, time: number, sourceUs: number): void {
  if (lines.count * 2 + 2 > lines.times.length) {
    const ranges = new Uint32Array(lines.ranges.length * 2);
    ranges.set(lines.ranges);
    lines.ranges = ranges;
    const times = new Float64Array(lines.times.length * 2);
    times.set(lines.times);
    lines.times = times;
  }
  const at = lines.count * LINE_FIELDS;
  lines.ranges[at] = start;
  lines.ranges[at + 1] = stop;
  lines.ranges[at + 2] = line;
  lines.ranges[at + 3] = messageOffset;
  lines.ranges[at + 4] = parsed;
  lines.times[lines.count * 2] = time;
  lines.times[lines.count * 2 + 1] = sourceUs;
  lines.count++;
}

function hashOwner(host: string, service: string, count: number): number {
  let hash = 0x811c9dc5;
  for (const text of [host, service]) {
    for (let index = 0; index < text.length; index++) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193);
    hash = Math.imul(hash ^ 0x1f, 0x01000193);
  }
  return (hash >>> 0) % count;
}
