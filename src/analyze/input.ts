/**
 * What analyze reads: files (gzip and zstd told by their magic bytes, not their names) or stdin,
 * cut into chunks of whole lines of bounded size, so that memory never grows with the input. Journal
 * export data and `journalctl -o json-pretty` output become one JSON object per line on the way.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { JournalExportParser, JournalVerboseParser, looksLikeJournalExport, looksLikeJournalVerbose } from './journal-export.js';

export interface InputFile {
  /** A path, or '-' for stdin. */
  path: string;
  /** Stands in for the service of lines that name none (a raw log file): the file's name. */
  fallbackService: string;
  /** Bytes on disk (as stored, compressed or not); undefined for stdin. */
  size: number | undefined;
}

/** An input that cannot be read as given: a one-line message for the user. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/**
 * The files to read, in order. A folder is refused unless `recursive`, then every file below it
 * is read, in path order (names starting with `.` are skipped, as in rule folders).
 */
export async function resolveInputs(paths: readonly string[], options: { recursive: boolean }): Promise<InputFile[]> {
  const inputs: InputFile[] = [];
  for (const path of paths.length > 0 ? paths : ['-']) {
    if (path === '-') {
      inputs.push({ path, fallbackService: 'stdin', size: undefined });
      continue;
    }
    let info;
    try {
      info = await stat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new InputError(code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path}: ${(error as Error).message}`);
    }
    if (info.isDirectory()) {
      if (!options.recursive) throw new InputError(`${path} is a directory; give its files, or --recursive to read every file below it`);
      for (const file of await filesBelow(path)) inputs.push(file);
      continue;
    }
    inputs.push({ path, fallbackService: basename(path), size: info.isFile() ? info.size : undefined });
  }
  return inputs;
}

async function filesBelow(dir: string): Promise<InputFile[]> {
  const found: InputFile[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesBelow(full)));
    else if (entry.isFile()) found.push({ path: full, fallbackService: entry.name, size: (await stat(full)).size });
  }
  return found;
}

export interface ReadOptions {
  stdin?: Readable;
  /** Largest line kept; a longer one is cut there (the rest of it dropped). */
  maxLineBytes: number;
  /** Chunks are cut at the last line end once this much is read. */
  chunkBytes: number;
  /** Largest window a zstd frame may ask for. */
  maxZstdWindowBytes: number;
  /** Told of every piece read from the file or stdin, as stored (compressed bytes for compressed input). */
  onRead?: (bytes: number) => void;
}

/**
 * Where chunks are assembled: buffers of `slotBytes` that go round (shared memory when the shards
 * run on worker threads), so that reading allocates nothing per chunk.
 */
export interface SlotPool {
  readonly slotBytes: number;
  /** A free slot; the reader hands it on with a chunk, and the pool gets it back with release(). */
  take(): Buffer;
  release(slot: Buffer): void;
}

/** The slot size a pool needs for these options: a chunk, plus the longest line that may straddle its end. */
export function slotBytesFor(options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): number {
  return options.chunkBytes + options.maxLineBytes + 2;
}

/** A chunk of whole lines at the start of a slot (the last line of the input may lack its newline). */
export interface Chunk {
  slot: Buffer;
  length: number;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(head: Uint8Array, magic: readonly number[]): boolean {
  return head.length >= magic.length && magic.every((byte, index) => head[index] === byte);
}

/** Reads into a buffer: how many bytes it placed at `offset` (at most `length`), 0 at the end. */
type ReadInto = (target: Buffer, offset: number, length: number) => Promise<number>;

/** Chunks of whole lines, each about `chunkBytes`, in slots of the pool. */
export async function* readChunks(input: InputFile, options: ReadOptions, pool: SlotPool): AsyncGenerator<Chunk> {
  if (input.path !== '-') {
    // A plain file is read straight into the slots; anything else is decoded first, then copied in.
    const handle = await open(input.path, 'r');
    try {
      const head = Buffer.alloc(512);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      const start = head.subarray(0, bytesRead);
      if (!startsWith(start, GZIP_MAGIC) && !startsWith(start, ZSTD_MAGIC) && !looksLikeJournalExport(start) && !isJsonPrettyStart(start) && !looksLikeJournalVerbose(start)) {
        let position = 0;
        const readInto: ReadInto = async (target, offset, length) => {
          const read = (await handle.read(target, offset, length, position)).bytesRead;
          position += read;
          options.onRead?.(read);
          return read;
        };
        yield* lineChunks(readInto, options, pool);
        return;
      }
    } finally {
      await handle.close();
    }
  }
  const raw = input.path === '-' ? (options.stdin ?? process.stdin) : createReadStream(input.path, { highWaterMark: 1 << 20 });
  const counted = countBytes(raw as AsyncIterable<Buffer | string>, options.onRead);
  const [head, source] = await peek(counted, 4);
  let decoded: AsyncIterable<Buffer>;
  if (startsWith(head, GZIP_MAGIC)) decoded = gunzip(source, input.path);
  else if (startsWith(head, ZSTD_MAGIC)) decoded = unzstd(source, input.path, options.maxZstdWindowBytes);
  else decoded = source;
  const [text, bytes] = await peek(decoded, 512);
  let lines: AsyncIterable<Buffer>;
  if (looksLikeJournalExport(text)) lines = exportEntries(bytes, options);
  else if (isJsonPrettyStart(text)) lines = jsonPrettyEntries(bytes, options);
  else if (looksLikeJournalVerbose(text)) lines = verboseEntries(bytes, options);
  else lines = bytes;
  yield* lineChunks(copyingReader(lines), options, pool);
}

/** Bytes as read (a stream given as stdin may have been set to give strings). */
async function* countBytes(source: AsyncIterable<Buffer | string>, onRead: ((bytes: number) => void) | undefined): AsyncGenerator<Buffer> {
  for await (const piece of source) {
    const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece;
    onRead?.(bytes.length);
    yield bytes;
  }
}

/** The first `bytes` bytes (fewer at the end of input) and the whole input again, from its start. */
async function peek(source: AsyncIterable<Buffer>, bytes: number): Promise<[Buffer, AsyncIterable<Buffer>]> {
  const iterator = source[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < bytes) {
    const next = await iterator.next();
    if (next.done === true) {
      done = true;
      break;
    }
    seen.push(next.value);
    size += next.value.length;
  }
  const head = Buffer.concat(seen).subarray(0, bytes);
  async function* replay(): AsyncGenerator<Buffer> {
    yield* seen;
    if (done) return;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) yield next.value;
  }
  return [head, replay()];
}

async function* gunzip(source: AsyncIterable<Buffer>, path: string): AsyncGenerator<Buffer> {
  const inflater = createGunzip();
  const feeding = (async () => {
    try {
      for await (const piece of source) if (!inflater.write(piece)) await new Promise((resolve) => inflater.once('drain', resolve));
      inflater.end();
    } catch (error) {
      inflater.destroy(error as Error);
    }
  })();
  try {
    for await (const piece of inflater as AsyncIterable<Buffer>) yield piece;
  } catch (error) {
    throw new InputError(`${path}: invalid gzip data: ${(error as Error).message}`);
  } finally {
    inflater.destroy();
    await feeding;
  }
}

async function* unzstd(source: AsyncIterable<Buffer>, path: string, maxWindowBytes: number): AsyncGenerator<Buffer> {
  // Imported when a zstd file comes: the native binding is not loaded for anything else.
  const { ZstdInputError, ZstdStreamDecoder } = await import('../ingest/content-encoding.js');
  const decoder = new ZstdStreamDecoder(maxWindowBytes);
  try {
    for await (const piece of source) yield* decoder.decode(piece);
    decoder.end();
  } catch (error) {
    if (!(error instanceof ZstdInputError)) throw error;
    const hint = error.kind === 'window' ? ` (allow a larger one with --max-zstd-window)` : '';
    throw new InputError(`${path}: ${error.message}${hint}`);
  }
}


/** A ReadInto over pieces that arrive as buffers: each is copied in, across as many reads as it takes. */
function copyingReader(source: AsyncIterable<Buffer>): ReadInto {
  const iterator = source[Symbol.asyncIterator]();
  let piece: Buffer | undefined;
  let at = 0;
  return async (target, offset, length) => {
    while (piece === undefined || at >= piece.length) {
      const next = await iterator.next();
      if (next.done === true) return 0;
      piece = next.value;
      at = 0;
    }
    const count = Math.min(length, piece.length - at);
    target.set(piece.subarray(at, at + count), offset);
    at += count;
    return count;
  };
}

/**
 * Whole lines, gathered in slots: once a slot holds `chunkBytes`, everything up to its last line
 * end goes out as a chunk and the unfinished line moves to the start of the next slot. A line
 * longer than `maxLineBytes` is kept cut there and the rest of it dropped, so that one endless line
 * cannot hold memory hostage.
 */
async function* lineChunks(read: ReadInto, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>, pool: SlotPool): AsyncGenerator<Chunk> {
  const capacity = slotBytesFor(options) - 1;
  if (pool.slotBytes < capacity) throw new RangeError(`slots of ${pool.slotBytes} bytes cannot hold chunks of ${options.chunkBytes} and lines of ${options.maxLineBytes}`);
  let slot = pool.take();
  /** Bytes in the slot: whole lines, then from `lineStart` the start of an unfinished one (never longer than maxLineBytes). */
  let used = 0;
  let lineStart = 0;
  /** A line was cut: what is read up to its end is dropped. */
  let dropping = false;
  for (;;) {
    const from = used;
    // Up to the chunk's size, then a little more to finish its last line: chunks stay near chunkBytes.
    const count = await read(slot, used, Math.min(capacity - used, Math.max(options.chunkBytes - used, 64 * 1024)));
    if (count === 0) break;
    used += count;
    if (dropping) {
      const newline = slot.indexOf(10, from);
      if (newline < 0 || newline >= used) {
        used = from;
        continue;
      }
      slot.copyWithin(from, newline + 1, used);
      used -= newline + 1 - from;
      dropping = false;
    }
    const last = used > from ? slot.lastIndexOf(10, used - 1) : -1;
    if (last + 1 > lineStart) lineStart = last + 1;
    if (used - lineStart > options.maxLineBytes) {
      // Nothing after lineStart is a line end: the bytes past the cut all belong to the long line.
      slot[lineStart + options.maxLineBytes] = 10;
      used = lineStart + options.maxLineBytes + 1;
      lineStart = used;
      dropping = true;
    }
    if (lineStart >= options.chunkBytes || used >= capacity) {
      const next = pool.take();
      const tail = used - lineStart;
      if (tail > 0) slot.copy(next, 0, lineStart, used);
      yield { slot, length: lineStart };
      slot = next;
      used = tail;
      lineStart = 0;
    }
  }
  if (used > 0) yield { slot, length: used };
  else pool.release(slot);
}

/** Journal export entries as JSON lines, in chunks. */
function exportEntries(source: AsyncIterable<Buffer>, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): AsyncGenerator<Buffer> {
  return entriesAsJsonLines(source, options.chunkBytes, (onEntry) => {
    const parser = new JournalExportParser({ maxValueBytes: options.maxLineBytes, onEntry });
    return { take: (piece) => parser.feed(piece), end: () => parser.end() };
  });
}

/**
 * A journal parser's entries, one JSON line each, handed on in chunks of about `chunkBytes`:
 * `parserOf` makes the parser around the sink its entries go to.
 */
async function* entriesAsJsonLines<Input>(
  inputs: AsyncIterable<Input>,
  chunkBytes: number,
  parserOf: (onEntry: (entry: Record<string, unknown>) => void) => { take(input: Input): void; end(): void },
): AsyncGenerator<Buffer> {
  let out = '';
  const parser = parserOf((entry) => {
    out += JSON.stringify(entry) + '\n';
  });
  for await (const input of inputs) {
    parser.take(input);
    if (out.length >= chunkBytes) {
      yield Buffer.from(out);
      out = '';
    }
  }
  parser.end();
  if (out.length > 0) yield Buffer.from(out);
}

/** `journalctl -o json-pretty` starts with a line holding only `{`. */
function isJsonPrettyStart(head: Buffer): boolean {
  return head[0] === 0x7b && (head[1] === 10 || (head[1] === 13 && head[2] === 10));
}

/** The lines of a byte stream as text (UTF-8 across pieces), each cut at `maxLineBytes` characters. */
async function* textLines(source: AsyncIterable<Buffer>, maxLineBytes: number): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  for await (const piece of source) {
    const lines = (carry + decoder.write(piece)).split('\n');
    carry = lines.pop() as string;
    if (carry.length > maxLineBytes) carry = carry.slice(0, maxLineBytes);
    for (const line of lines) yield line.endsWith('\r') ? line.slice(0, -1) : line;
  }
  carry += decoder.end();
  if (carry !== '') yield carry;
}

/**
 * `journalctl -o json-pretty`: each entry's object spread over lines, from a line `{` to a line
 * `}`, as one compact JSON line each. Lines outside an object pass as they are.
 */
async function* jsonPrettyEntries(source: AsyncIterable<Buffer>, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): AsyncGenerator<Buffer> {
  let out = '';
  let object: string[] | null = null;
  let objectSize = 0;
  for await (const line of textLines(source, options.maxLineBytes)) {
    if (object === null) {
      if (line === '{') {
        object = [line];
        objectSize = 1;
      } else if (line !== '') {
        out += line + '\n';
      }
    } else {
      objectSize += line.length;
      if (objectSize <= options.maxLineBytes) object.push(line);
      if (line === '}') {
        const text = object.join('\n');
        object = null;
        try {
          out += JSON.stringify(JSON.parse(text)) + '\n';
        } catch {
          // Not the object it looked like (or cut at the line limit): its lines as they are.
          out += text + '\n';
        }
      }
    }
    if (out.length >= options.chunkBytes) {
      yield Buffer.from(out);
      out = '';
    }
  }
  if (object !== null) out += object.join('\n') + '\n';
  if (out.length > 0) yield Buffer.from(out);
}

/** `journalctl -o verbose` entries as JSON lines, in chunks. */
function verboseEntries(source: AsyncIterable<Buffer>, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): AsyncGenerator<Buffer> {
  return entriesAsJsonLines(textLines(source, options.maxLineBytes), options.chunkBytes, (onEntry) => {
    const parser = new JournalVerboseParser(onEntry);
    return { take: (line) => parser.line(line), end: () => parser.end() };
  });
}
