/**
 * What analyze reads: files (gzip and zstd told by their magic bytes, not their names) or stdin,
 * cut into chunks of whole lines of bounded size, so that memory never grows with the input. Journal
 * export data and `journalctl -o json-pretty` output become one JSON object per line on the way.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ZstdInputError, ZstdStreamDecoder } from '../ingest/content-encoding.js';
import { JournalExportParser, looksLikeJournalExport } from './journal-export.js';

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
  /** Chunks are cut at the first line end past this size. */
  chunkBytes: number;
  /** Largest window a zstd frame may ask for. */
  maxZstdWindowBytes: number;
  /** Told of every piece read from the file or stdin, as stored (compressed bytes for compressed input). */
  onRead?: (bytes: number) => void;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(head: Buffer, magic: readonly number[]): boolean {
  return head.length >= magic.length && magic.every((byte, index) => head[index] === byte);
}

/** Chunks of whole lines (the last line of the input may lack its newline), each about `chunkBytes`. */
export async function* readChunks(input: InputFile, options: ReadOptions): AsyncGenerator<Buffer> {
  const raw = input.path === '-' ? (options.stdin ?? process.stdin) : createReadStream(input.path, { highWaterMark: 1 << 20 });
  const counted = countBytes(raw as AsyncIterable<Buffer | string>, options.onRead);
  const [head, source] = await peek(counted, 4);
  let decoded: AsyncIterable<Buffer>;
  if (startsWith(head, GZIP_MAGIC)) decoded = gunzip(source, input.path);
  else if (startsWith(head, ZSTD_MAGIC)) decoded = unzstd(source, input.path, options.maxZstdWindowBytes);
  else decoded = source;
  const [text, lines] = await peek(decoded, 64);
  if (looksLikeJournalExport(text)) yield* exportEntries(lines, options);
  else if (isJsonPrettyStart(text)) yield* jsonPrettyEntries(lineChunks(lines, options), options);
  else yield* lineChunks(lines, options);
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

/**
 * Whole lines, gathered into chunks of at least `chunkBytes` (except the last). A line longer than
 * `maxLineBytes` is kept cut there and the rest of it dropped, so that one endless line cannot hold
 * memory hostage.
 */
export async function* lineChunks(source: AsyncIterable<Buffer>, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let size = 0;
  /** The unfinished line at the end of what was read so far. */
  let carry: Buffer[] = [];
  let carrySize = 0;
  let dropping = false;
  const emit = (piece: Buffer): void => {
    parts.push(piece);
    size += piece.length;
  };
  for await (const piece of source) {
    let data = piece;
    if (dropping) {
      const newline = data.indexOf(10);
      if (newline < 0) continue;
      data = data.subarray(newline + 1);
      dropping = false;
    }
    const first = data.indexOf(10);
    if (first < 0) {
      carry.push(data);
      carrySize += data.length;
      if (carrySize > options.maxLineBytes) {
        emit(cutLine(carry, options.maxLineBytes));
        carry = [];
        carrySize = 0;
        dropping = true;
      }
      continue;
    }
    if (carrySize > 0) {
      carry.push(data.subarray(0, first + 1));
      emit(carrySize + first > options.maxLineBytes ? cutLine(carry, options.maxLineBytes) : Buffer.concat(carry));
      carry = [];
      carrySize = 0;
      data = data.subarray(first + 1);
    }
    const last = data.lastIndexOf(10);
    if (last >= 0) emit(data.subarray(0, last + 1));
    if (last + 1 < data.length) {
      // Copied: the piece it was read into is not pinned by an unfinished line.
      carry.push(Buffer.from(data.subarray(last + 1)));
      carrySize = data.length - last - 1;
    }
    if (size >= options.chunkBytes) {
      yield parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (carrySize > 0) emit(Buffer.concat(carry));
  if (size > 0) yield parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
}

/** The first `maxLineBytes` bytes of a line, with its newline. */
function cutLine(pieces: readonly Buffer[], maxLineBytes: number): Buffer {
  const line = Buffer.concat(pieces);
  const cut = Buffer.allocUnsafe(maxLineBytes + 1);
  line.copy(cut, 0, 0, maxLineBytes);
  cut[maxLineBytes] = 10;
  return cut;
}

/** Journal export entries as JSON lines, in chunks. */
async function* exportEntries(source: AsyncIterable<Buffer>, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): AsyncGenerator<Buffer> {
  let out = '';
  const parser = new JournalExportParser({
    maxValueBytes: options.maxLineBytes,
    onEntry: (entry) => {
      out += JSON.stringify(entry) + '\n';
    },
  });
  for await (const piece of source) {
    parser.feed(piece);
    if (out.length >= options.chunkBytes) {
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

/**
 * `journalctl -o json-pretty`: each entry's object spread over lines, from a line `{` to a line
 * `}`, as one compact JSON line each. Lines outside an object pass as they are.
 */
async function* jsonPrettyEntries(chunks: AsyncIterable<Buffer>, options: Pick<ReadOptions, 'chunkBytes' | 'maxLineBytes'>): AsyncGenerator<Buffer> {
  let out = '';
  let object: string[] | null = null;
  let objectSize = 0;
  for await (const chunk of chunks) {
    for (const rawLine of chunk.toString('utf8').split('\n')) {
      const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
      if (object === null) {
        if (line === '{') {
          object = [line];
          objectSize = 1;
        } else if (line !== '') {
          out += line + '\n';
        }
        continue;
      }
      objectSize += line.length;
      if (objectSize <= options.maxLineBytes) object.push(line);
      if (line !== '}') continue;
      const text = object.join('\n');
      object = null;
      try {
        out += JSON.stringify(JSON.parse(text)) + '\n';
      } catch {
        // Not the object it looked like (or cut at the line limit): its lines as they are.
        out += text + '\n';
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
