import { badBody } from '../errors.js';
import { BatchBuilder, isPlainRecord, locate, type DecodedBatch } from './batch.js';
import { CH_BACKSLASH, CH_CARRIAGE_RETURN, CH_CLOSE_BRACE, CH_CLOSE_BRACKET, CH_COMMA, CH_NEWLINE, CH_OPEN_BRACE, CH_OPEN_BRACKET, CH_QUOTE, CH_SPACE, CH_TAB } from '../../text/char-codes.js';

/**
 * Bodies up to this size are tried with one JSON.parse (a few milliseconds); larger ones are cut
 * into values first and each value is parsed alone, so that no single step holds the event loop
 * and a value over --max-line-bytes is kept raw without being parsed. Both this and RUN_MAX_CHARS
 * stay under V8's 100 KiB: JSON.parse puts what it makes of a longer text straight into the old
 * generation (kPretenureTreshold in v8/src/json/json-parser.h), where records that are dropped a
 * moment later wait for a full collection.
 */
const WHOLE_PARSE_MAX_CHARS = 96 * 1024;

/**
 * The JSON family, everything labelled `application/json` or sniffed as JSON:
 * - a JSON array (Vector `json`, Fluent Bit `json`, Fluentd `json_array`), also of bare strings
 *   (Vector's log namespace), also wrapped as `{"data":[...]}` (Vector `payload_prefix`);
 * - a single object;
 * - concatenated values with nothing or one delimiter between them (Fluent Bit `json_stream`, still
 *   labelled application/json; Vector `bytes`/`character_delimited` framing; GELF's NUL).
 *
 * A broken value inside is kept as raw text and counted. Only a body that cannot be split into
 * values at all (an array that never closes, a first value that never ends) is a 400; a large
 * body keeps the complete elements of an array that never closes.
 */
export async function decodeJson(text: string, batch: BatchBuilder): Promise<DecodedBatch> {
  const first = skipSeparators(text, 0);
  if (first >= text.length) return batch.result();
  if (text.length <= WHOLE_PARSE_MAX_CHARS) {
    const whole = tryParse(text);
    if (whole !== NOT_JSON) {
      await addDocument(batch, whole, text);
      return batch.result();
    }
    await decodeValueStream(text, first, batch, false);
    return batch.result();
  }
  const wrapped = DATA_WRAPPER.exec(text.slice(first, first + 64));
  if (wrapped) {
    const open = first + wrapped[0].length - 1;
    const close = await decodeLargeArray(textSource(text), open, batch);
    if (close >= 0 && /^\s*\}\s*$/.test(text.slice(close))) return batch.result();
    if (close >= 0) await decodeValueStream(text, close, batch, true);
    return batch.result();
  }
  await decodeValueStream(text, first, batch, true);
  return batch.result();
}

/** Vector's `payload_prefix: '{"data":'` with `payload_suffix: '}'`. */
const DATA_WRAPPER = /^\{\s*"data"\s*:\s*\[/;

const NOT_JSON = Symbol('not-json');

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}

async function addElements(batch: BatchBuilder, elements: unknown[]): Promise<void> {
  for (const element of elements) {
    batch.addValue(element);
    await batch.yieldIfDue();
  }
}

async function addDocument(batch: BatchBuilder, document: unknown, source: string): Promise<void> {
  if (Array.isArray(document)) return addElements(batch, document);
  if (isPlainRecord(document)) {
    const data = document['data'];
    if (Array.isArray(data) && Object.keys(document).length === 1) return addElements(batch, data);
  }
  batch.addValue(document, undefined, source);
}

/** One value's text: parsed and added, or kept raw when it is too long or not JSON. */
function addValueText(batch: BatchBuilder, slice: string): boolean {
  if (batch.mayBeTooLong(slice.length) && Buffer.byteLength(slice) > batch.limits.maxLineBytes) {
    batch.addMalformed(slice);
    return false;
  }
  const parsed = tryParse(slice);
  if (parsed === NOT_JSON) {
    batch.addMalformed(slice);
    return false;
  }
  batch.addValue(parsed, undefined, slice);
  return true;
}

function isJsonWhitespace(code: number): boolean {
  return code === CH_SPACE || code === CH_NEWLINE || code === CH_CARRIAGE_RETURN || code === CH_TAB;
}

/** Between values, as a byte: whitespace, `,` between array-style records, NUL (GELF framing). */
function isSeparatorByte(code: number): boolean {
  return isJsonWhitespace(code) || code === CH_COMMA || code === 0;
}

/** Between values in text: a separator byte's character, or the BOM (three bytes in a body: isBomAt). */
function isSeparator(code: number): boolean {
  return isSeparatorByte(code) || code === 0xfeff;
}

function skipSeparators(text: string, from: number): number {
  let index = from;
  while (index < text.length && isSeparator(text.charCodeAt(index))) index++;
  return index;
}

function isContainerStart(code: number): boolean {
  return code === CH_OPEN_BRACE || code === CH_OPEN_BRACKET || code === CH_QUOTE;
}

/** Index just past the string whose opening quote is at `quote`, or -1 if it never closes. */
function stringEnd(text: string, quote: number): number {
  let from = quote + 1;
  for (;;) {
    const close = text.indexOf('"', from);
    if (close < 0) return -1;
    let backslashes = 0;
    for (let at = close - 1; at > quote && text.charCodeAt(at) === CH_BACKSLASH; at--) backslashes++;
    if (backslashes % 2 === 0) return close + 1;
    from = close + 1;
  }
}

/** Index just past the object/array/string starting at `start`, or -1 if it never ends. */
function valueEnd(text: string, start: number): number {
  if (text.charCodeAt(start) === CH_QUOTE) return stringEnd(text, start);
  let depth = 0;
  for (let index = start; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === CH_QUOTE) {
      const end = stringEnd(text, index);
      if (end < 0) return -1;
      index = end - 1;
    } else if (code === CH_OPEN_BRACE || code === CH_OPEN_BRACKET) {
      depth++;
    } else if (code === CH_CLOSE_BRACE || code === CH_CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return index + 1;
    }
  }
  return -1;
}

/** A bare token (number, literal, junk): up to the next separator or structural character. */
function tokenEnd(text: string, start: number, limit: number): number {
  let index = start;
  while (index < limit) {
    const code = text.charCodeAt(index);
    if (isSeparator(code) || isContainerStart(code) || code === CH_CLOSE_BRACE || code === CH_CLOSE_BRACKET) break;
    index++;
  }
  return Math.max(index, start + 1);
}

async function decodeValueStream(text: string, from: number, batch: BatchBuilder, large: boolean): Promise<void> {
  let index = from;
  for (;;) {
    await batch.yieldIfDue();
    index = skipSeparators(text, index);
    if (index >= text.length) return;
    const code = text.charCodeAt(index);
    if (!isContainerStart(code)) {
      const end = tokenEnd(text, index, text.length);
      // One odd character between values is a framing delimiter (Vector character_delimited).
      if (end - index > 1) batch.addMalformed(text.slice(index, end));
      index = end;
      continue;
    }
    if (large && code === CH_OPEN_BRACKET) {
      const close = await decodeLargeArray(textSource(text), index, batch);
      if (close < 0) return;
      index = close;
      continue;
    }
    const end = valueEnd(text, index);
    if (end < 0) {
      if (code === CH_OPEN_BRACKET) {
        const at = locate(text, index);
        throw badBody(`JSON array opened at line ${at.line} (byte ${at.byteOffset}) is never closed`, { stage: 'json', ...at });
      }
      const before = batch.count;
      const parsedPieces = await splitAtBoundaries(text, index, batch);
      if (parsedPieces === 0 && before === 0) {
        const at = locate(text, index);
        throw badBody(`JSON value starting at line ${at.line} (byte ${at.byteOffset}) never ends`, { stage: 'json', ...at });
      }
      return;
    }
    const slice = text.slice(index, end);
    if (batch.mayBeTooLong(slice.length) && Buffer.byteLength(slice) > batch.limits.maxLineBytes) {
      batch.addMalformed(slice);
    } else {
      const parsed = tryParse(slice);
      if (parsed !== NOT_JSON) await addDocument(batch, parsed, slice);
      else if (code === CH_OPEN_BRACKET) await decodeArrayElements(text, index, end, batch);
      else batch.addMalformed(slice);
    }
    index = end;
  }
}

/** Elements parsed with one JSON.parse: under a millisecond of parsing, far cheaper than one call each. */
const RUN_MAX_CHARS = 64 * 1024;
const RUN_MAX_ELEMENTS = 1024;

/**
 * A large array's text as decodeLargeArray reads it: a string by its indexes (textSource), or a
 * body by its UTF-8 bytes (byteSource), so that a body need not become one string.
 */
interface ArraySource {
  readonly length: number;
  codeAt(index: number): number;
  skipSeparators(from: number): number;
  /** Index just past the container or string starting at `start`, or -1 if it never ends. */
  valueEnd(start: number): number;
  tokenEnd(start: number): number;
  textOf(start: number, end: number): string;
  /** Where the next `},{` starts at or after `from` (-1 if none): where two objects of an array meet, most likely. */
  objectsMeetAfter(from: number): number;
}

function textSource(text: string): ArraySource {
  return {
    length: text.length,
    codeAt: (index) => text.charCodeAt(index),
    skipSeparators: (from) => skipSeparators(text, from),
    valueEnd: (start) => valueEnd(text, start),
    tokenEnd: (start) => tokenEnd(text, start, text.length),
    textOf: (start, end) => text.slice(start, end),
    objectsMeetAfter: (from) => text.indexOf(OBJECTS_MEET, from),
  };
}

/**
 * The elements of a large array, a run of them per JSON.parse, without finding the array's end
 * first. Returns the index after its `]`, or -1 when it never closes (its complete elements are
 * kept, the incomplete rest counted malformed).
 */
async function decodeLargeArray(source: ArraySource, open: number, batch: BatchBuilder): Promise<number> {
  const run = new ElementRun(source.textOf, batch);
  let index = open + 1;
  let guessing = true;
  for (;;) {
    const pause = batch.yieldIfDue();
    if (pause) await pause;
    index = source.skipSeparators(index);
    if (index >= source.length) {
      run.flush();
      return -1;
    }
    const code = source.codeAt(index);
    if (code === CH_CLOSE_BRACKET) {
      run.flush();
      return index + 1;
    }
    if (guessing && code === CH_OPEN_BRACE && run.isEmpty()) {
      const after = addGuessedRun(source, index, batch);
      if (after === GUESS_WRONG) guessing = false;
      else if (after !== NO_GUESS) {
        index = after;
        continue;
      }
    }
    const container = isContainerStart(code);
    const end = container ? source.valueEnd(index) : source.tokenEnd(index);
    if (end < 0) {
      run.flush();
      batch.addMalformed(source.textOf(index, source.length));
      return -1;
    }
    // In bytes, a value may look too long where its characters would not: addValueText then decides.
    if (container && !batch.mayBeTooLong(end - index)) {
      run.add(index, end);
    } else {
      run.flush();
      addValueText(batch, source.textOf(index, end));
    }
    index = end;
  }
}

const OBJECTS_MEET = '},{';
const OBJECTS_MEET_BYTES = Buffer.from(OBJECTS_MEET);
/** addGuessedRun's answers besides an index: no run was tried here, or one was and the guess was wrong. */
const NO_GUESS = -1;
const GUESS_WRONG = -2;

/**
 * A run of an array's objects cut where the first `},{` past RUN_MAX_CHARS is, without finding
 * each element's end: added when `[` + the run + `]` parses, and then the index after it. Finding
 * every element's end cost ~0.3 s of the decoding thread per 1M records of a Vector array, and
 * shippers write `},{` between objects. The guess is exact when the run parses: had the cut been
 * inside a string, the run would end in an unclosed string; had it been inside a nested value, its
 * brackets would not balance. A wrong guess (GUESS_WRONG, the caller then finds the ends) costs one
 * failed parse; NO_GUESS when there is no `},{` near enough (the last elements, large ones).
 */
function addGuessedRun(source: ArraySource, start: number, batch: BatchBuilder): number {
  const meet = source.objectsMeetAfter(start + RUN_MAX_CHARS);
  const end = meet + 1;
  // Runs stay under V8's pretenuring size (WHOLE_PARSE_MAX_CHARS), and too short for any element
  // in them to be over --max-line-bytes (which decodeLargeArray checks element by element).
  if (meet < 0 || end - start > WHOLE_PARSE_MAX_CHARS || batch.mayBeTooLong(end - start)) return NO_GUESS;
  const parsed = tryParse(`[${source.textOf(start, end)}]`);
  if (!Array.isArray(parsed)) return GUESS_WRONG;
  for (let index = 0; index < parsed.length; index++) batch.addValue(parsed[index], undefined, () => elementText(source, start, index));
  return end;
}

/** The text of the `nth` element of an array from `start`, found the slow way (the raw text of a value too deep to keep). */
function elementText(source: ArraySource, start: number, nth: number): string {
  let index = start;
  for (let element = 0; ; element++) {
    index = source.skipSeparators(index);
    const end = isContainerStart(source.codeAt(index)) ? source.valueEnd(index) : source.tokenEnd(index);
    if (element === nth) return source.textOf(index, end);
    index = end;
  }
}

/**
 * Consecutive elements of an array, added in order: parsed together as one array when they make
 * one (only separators between them, each valid), else each alone as before.
 */
class ElementRun {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private length = 0;

  /** `textOf` gives the text between two positions of the body (indexes of a string, or byte offsets). */
  constructor(
    private readonly textOf: (start: number, end: number) => string,
    private readonly batch: BatchBuilder,
  ) {}

  isEmpty(): boolean {
    return this.starts.length === 0;
  }

  add(start: number, end: number): void {
    this.starts.push(start);
    this.ends.push(end);
    this.length += end - start;
    if (this.length >= RUN_MAX_CHARS || this.starts.length >= RUN_MAX_ELEMENTS) this.flush();
  }

  flush(): void {
    const { starts, ends, textOf, batch } = this;
    const count = starts.length;
    if (count === 0) return;
    const parsed = tryParse(`[${textOf(starts[0] as number, ends[count - 1] as number)}]`);
    if (Array.isArray(parsed) && parsed.length === count) {
      for (let index = 0; index < count; index++) {
        const start = starts[index] as number;
        const end = ends[index] as number;
        batch.addValue(parsed[index], undefined, () => textOf(start, end));
      }
    } else {
      for (let index = 0; index < count; index++) addValueText(batch, textOf(starts[index] as number, ends[index] as number));
    }
    starts.length = 0;
    ends.length = 0;
    this.length = 0;
  }
}

/** An array that closes but does not parse: keep its good elements, count the bad ones. */
async function decodeArrayElements(text: string, open: number, end: number, batch: BatchBuilder): Promise<void> {
  const limit = end - 1;
  let index = open + 1;
  for (;;) {
    index = skipSeparators(text, index);
    if (index >= limit) return;
    const code = text.charCodeAt(index);
    let elementEnd = isContainerStart(code) ? valueEnd(text, index) : tokenEnd(text, index, limit);
    if (elementEnd < 0 || elementEnd > limit) elementEnd = limit;
    addValueText(batch, text.slice(index, elementEnd));
    index = elementEnd;
    await batch.yieldIfDue();
  }
}

/**
 * After a value that never ends (an unbalanced quote, usually), the scanner has lost the structure;
 * the rest is cut where records usually meet, at line ends and `}{`, so later records survive.
 * Returns how many pieces parsed.
 */
async function splitAtBoundaries(text: string, from: number, batch: BatchBuilder): Promise<number> {
  let parsedPieces = 0;
  let start = from;
  const take = async (end: number): Promise<void> => {
    const piece = text.slice(start, end).trim();
    start = end;
    if (piece === '') return;
    const tooLong = batch.mayBeTooLong(piece.length) && Buffer.byteLength(piece) > batch.limits.maxLineBytes;
    const parsed = tooLong ? NOT_JSON : tryParse(piece);
    if (parsed === NOT_JSON) {
      batch.addMalformed(piece);
    } else {
      parsedPieces++;
      await addDocument(batch, parsed, piece);
    }
    await batch.yieldIfDue();
  };
  for (let index = from; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === CH_NEWLINE) await take(index + 1);
    else if (code === CH_CLOSE_BRACE && text.charCodeAt(index + 1) === CH_OPEN_BRACE) await take(index + 1);
  }
  await take(text.length);
  return parsedPieces;
}

/*
 * From the body's bytes. A large array (Vector, Fluent Bit `json`, Fluentd `json_array`, also as
 * `{"data":[...]}`) is cut into elements on its UTF-8 bytes, and only each run of elements is made
 * a string (body-text.ts says why). The scanners below are those above over bytes: every byte they
 * look for (quotes, backslashes, brackets, separators) is ASCII, and no byte of a UTF-8 character
 * over U+007F is ASCII, so they find the same places; the BOM separator is its three bytes.
 */

/** Bodies up to this size are decoded as one string: they may be parsed whole (WHOLE_PARSE_MAX_CHARS). */
const STRING_BODY_MAX_BYTES = 4 * WHOLE_PARSE_MAX_CHARS;

/**
 * The JSON family from a body's bytes, with the records, raw values and errors decodeJson makes of
 * its text. Only an array is decoded from bytes; a body of anything else (concatenated objects,
 * say), and whatever follows an array, is decoded as text.
 */
export async function decodeJsonBody(body: Buffer, batch: BatchBuilder): Promise<DecodedBatch> {
  if (body.length <= STRING_BODY_MAX_BYTES) return decodeJson(body.toString('utf8'), batch);
  const first = skipSeparatorBytes(body, 0);
  if (first >= body.length) return batch.result();
  const { open, wrapped } = largeArrayStart(body, first);
  batch.refuseIfCertainlyOver(valueEnds(body, first, open, batch.limits.maxLineBytes), body.length);
  if (open < 0) return decodeJson(body.toString('utf8'), batch);
  const close = await decodeLargeArray(byteSource(body), open, batch);
  if (close < 0) return batch.result();
  if (skipSeparatorBytes(body, close) >= body.length) return batch.result();
  // What follows the array is short, usually: the wrapper's `}`.
  if (wrapped && /^\s*\}\s*$/.test(body.toString('utf8', close))) return batch.result();
  // Something else follows it: rare, decoded as decodeJson decodes it, at its place in the text.
  const text = body.toString('utf8');
  await decodeValueStream(text, body.toString('utf8', 0, close).length, batch, true);
  return batch.result();
}

/**
 * Where a large body's array opens, when it is one (or `{"data":[...]}`, then `wrapped`): its
 * elements are then cut on the bytes. -1 when the body is something else.
 */
function largeArrayStart(body: Buffer, first: number): { open: number; wrapped: boolean } {
  if (body[first] === CH_OPEN_BRACKET) return { open: first, wrapped: false };
  // The 64 characters decodeJson looks at: at most 256 bytes.
  const wrapper = DATA_WRAPPER.exec(body.toString('utf8', first, first + 256).slice(0, 64));
  return wrapper ? { open: first + Buffer.byteLength(wrapper[0]) - 1, wrapped: true } : { open: -1, wrapped: false };
}

/**
 * The byte after each value of a large body, in the order decodeJsonBody reads them, negated for
 * a value that may not make exactly one record (BatchBuilder#refuseIfCertainlyOver): a string (a
 * blank one makes none), a value-stream object that may be a `{"data":[...]}` wrapper (its array
 * may be empty), a token that may be one character (a framing delimiter). The values stop where
 * the decoder would cut by guessing: at one that never ends.
 */
function* valueEnds(body: Buffer, first: number, arrayOpen: number, maxLineBytes: number): Generator<number> {
  // An array decodeJsonBody cuts on the bytes (a wrapper's too) is read from its `[`, as any other.
  let index = arrayOpen >= 0 ? arrayOpen : first;
  for (;;) {
    index = skipSeparatorBytes(body, index);
    if (index >= body.length) return;
    const code = body[index] as number;
    if (code === CH_OPEN_BRACKET) {
      index = yield* elementEnds(body, index);
      if (index < 0) return;
      continue;
    }
    if (!isContainerStart(code)) {
      const end = tokenEndBytes(body, index);
      // Two ASCII bytes are two characters: more than a delimiter, so a malformed record.
      yield end - index >= 2 && code < 0x80 && (body[index + 1] as number) < 0x80 ? end : -end;
      index = end;
      continue;
    }
    const end = valueEndBytes(body, index);
    if (end < 0) return;
    yield code === CH_OPEN_BRACE && (end - index > maxLineBytes || !mayBeDataWrapper(body, index)) ? end : -end;
    index = end;
  }
}

/** Element ends of the array opened at `open` as decodeLargeArray takes them, a string's negated; the index after its `]`, or -1 if it never closes. */
function* elementEnds(body: Buffer, open: number): Generator<number, number> {
  let index = open + 1;
  for (;;) {
    index = skipSeparatorBytes(body, index);
    if (index >= body.length) return -1;
    const code = body[index] as number;
    if (code === CH_CLOSE_BRACKET) return index + 1;
    const end = isContainerStart(code) ? valueEndBytes(body, index) : tokenEndBytes(body, index);
    if (end < 0) return -1;
    yield code === CH_QUOTE ? -end : end;
    index = end;
  }
}

/** Whether the object at `open` may have `data` as its first key (also spelt with escapes). */
function mayBeDataWrapper(body: Buffer, open: number): boolean {
  let index = open + 1;
  while (index < body.length && isJsonWhitespace(body[index] as number)) index++;
  if (body[index] !== CH_QUOTE) return body[index] !== CH_CLOSE_BRACE;
  const next = body[index + 1];
  return next === 0x64 /* d */ || next === CH_BACKSLASH;
}

function byteSource(body: Buffer): ArraySource {
  return {
    length: body.length,
    codeAt: (index) => body[index] as number,
    skipSeparators: (from) => skipSeparatorBytes(body, from),
    valueEnd: (start) => valueEndBytes(body, start),
    tokenEnd: (start) => tokenEndBytes(body, start),
    textOf: (start, end) => body.toString('utf8', start, end),
    objectsMeetAfter: (from) => body.indexOf(OBJECTS_MEET_BYTES, from),
  };
}

const BOM_BYTES = [0xef, 0xbb, 0xbf] as const;

function isBomAt(body: Buffer, index: number): boolean {
  return body[index] === BOM_BYTES[0] && body[index + 1] === BOM_BYTES[1] && body[index + 2] === BOM_BYTES[2];
}

function skipSeparatorBytes(body: Buffer, from: number): number {
  let index = from;
  for (;;) {
    if (index >= body.length) return index;
    const code = body[index] as number;
    if (isSeparatorByte(code)) index++;
    else if (isBomAt(body, index)) index += BOM_BYTES.length;
    else return index;
  }
}

function stringEndBytes(body: Buffer, quote: number): number {
  let from = quote + 1;
  for (;;) {
    const close = body.indexOf(CH_QUOTE, from);
    if (close < 0) return -1;
    let backslashes = 0;
    for (let at = close - 1; at > quote && body[at] === CH_BACKSLASH; at--) backslashes++;
    if (backslashes % 2 === 0) return close + 1;
    from = close + 1;
  }
}

function valueEndBytes(body: Buffer, start: number): number {
  if (body[start] === CH_QUOTE) return stringEndBytes(body, start);
  let depth = 0;
  for (let index = start; index < body.length; index++) {
    const code = body[index] as number;
    if (code === CH_QUOTE) {
      const end = stringEndBytes(body, index);
      if (end < 0) return -1;
      index = end - 1;
    } else if (code === CH_OPEN_BRACE || code === CH_OPEN_BRACKET) {
      depth++;
    } else if (code === CH_CLOSE_BRACE || code === CH_CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return index + 1;
    }
  }
  return -1;
}

function tokenEndBytes(body: Buffer, start: number): number {
  let index = start;
  while (index < body.length) {
    const code = body[index] as number;
    if (isSeparatorByte(code) || isBomAt(body, index)) break;
    if (isContainerStart(code) || code === CH_CLOSE_BRACE || code === CH_CLOSE_BRACKET) break;
    index++;
  }
  return Math.max(index, start + 1);
}
