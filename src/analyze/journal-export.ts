/**
 * The two journalctl output modes that print whole entries field by field: export and verbose.
 *
 * `journalctl -o export` (the Journal Export Format, systemd.io/JOURNAL_EXPORT_FORMATS, written by
 * output_export() in systemd's src/shared/logs-show.c): one `FIELD=value` line per field, a blank
 * line after each entry, and a field whose value is not printable UTF-8 without newlines written
 * as its name, a newline, its length as a little-endian 64-bit number, the raw value and a newline.
 * Entries come out as `journalctl -o json` objects (a repeated field as an array), so that they go
 * through the same path as JSON lines.
 */

export interface ExportParserOptions {
  /** Largest field value kept; a longer one is cut (its remaining bytes skipped). */
  maxValueBytes: number;
  /** Receives each complete entry. */
  onEntry: (entry: Record<string, string | string[]>) => void;
}

const NEWLINE = 10;
const EQUALS = 61;

/** An incremental parser: feed() the bytes as they come, end() at the end of the input. */
export class JournalExportParser {
  private entry: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  private fields = 0;
  private carry: Buffer | null = null;
  /** The carried line was cut: the rest of it, up to its newline, is dropped. */
  private dropRestOfLine = false;
  /** A binary field being read: its name, its length and what of its value has come. */
  private binary: { name: string; length: number; parts: Buffer[]; received: number } | null = null;
  /** Bytes of a cut binary value still to skip, then its closing newline. */
  private skip = 0;

  constructor(private readonly options: ExportParserOptions) {}

  feed(piece: Buffer): void {
    let rest = piece;
    if (this.dropRestOfLine) {
      const newline = piece.indexOf(NEWLINE);
      if (newline < 0) return;
      rest = piece.subarray(newline);
      this.dropRestOfLine = false;
    }
    const data = this.carry === null ? rest : Buffer.concat([this.carry, rest]);
    this.carry = null;
    let at = 0;
    while (at < data.length) {
      if (this.skip > 0) {
        const skipped = Math.min(this.skip, data.length - at);
        this.skip -= skipped;
        at += skipped;
        continue;
      }
      if (this.binary !== null) {
        at = this.readBinary(data, at);
        if (this.binary !== null) break;
        continue;
      }
      const newline = data.indexOf(NEWLINE, at);
      if (newline < 0) {
        // Keep an unfinished line for the next piece, cut when it grows past what a value may hold.
        const unfinished = data.subarray(at);
        const cap = this.options.maxValueBytes + 256;
        this.dropRestOfLine = unfinished.length > cap;
        this.carry = Buffer.from(this.dropRestOfLine ? unfinished.subarray(0, cap) : unfinished);
        return;
      }
      if (newline === at) {
        this.endEntry();
        at = newline + 1;
        continue;
      }
      const equals = data.indexOf(EQUALS, at);
      if (equals >= 0 && equals < newline) {
        const value = data.toString('utf8', equals + 1, Math.min(newline, equals + 1 + this.options.maxValueBytes));
        this.add(data.toString('latin1', at, equals), value);
        at = newline + 1;
        continue;
      }
      // A field name alone on its line: a binary value follows, after its 64-bit length.
      if (data.length - newline - 1 < 8) {
        this.carry = Buffer.from(data.subarray(at));
        return;
      }
      const length = Number(data.readBigUInt64LE(newline + 1));
      this.binary = { name: data.toString('latin1', at, newline), length, parts: [], received: 0 };
      at = newline + 9;
    }
  }

  /** The last entry, when the input does not end with its blank line. */
  end(): void {
    if (this.binary !== null) this.finishBinary();
    this.endEntry();
  }

  private readBinary(data: Buffer, at: number): number {
    const binary = this.binary as { name: string; length: number; parts: Buffer[]; received: number };
    const wanted = binary.length - binary.received;
    const available = Math.min(wanted, data.length - at);
    const keep = Math.max(0, Math.min(available, this.options.maxValueBytes - binary.received));
    if (keep > 0) binary.parts.push(Buffer.from(data.subarray(at, at + keep)));
    binary.received += available;
    if (binary.received < binary.length) return data.length;
    this.finishBinary();
    // The value is followed by a newline.
    const after = at + available;
    if (after < data.length) return data[after] === NEWLINE ? after + 1 : after;
    this.skip = 1;
    return after;
  }

  private finishBinary(): void {
    const binary = this.binary as { name: string; length: number; parts: Buffer[]; received: number };
    this.binary = null;
    this.add(binary.name, Buffer.concat(binary.parts).toString('utf8'));
  }

  private add(name: string, value: string): void {
    const previous = this.entry[name];
    if (previous === undefined) this.entry[name] = value;
    else if (Array.isArray(previous)) previous.push(value);
    else this.entry[name] = [previous, value];
    this.fields++;
  }

  private endEntry(): void {
    if (this.fields === 0) return;
    const entry = this.entry;
    this.entry = Object.create(null) as Record<string, string | string[]>;
    this.fields = 0;
    this.options.onEntry(entry);
  }
}

/** Whether the start of an input is journal export data: its first line sets a journal address field (`__CURSOR=`, `__REALTIME_TIMESTAMP=`). */
export function looksLikeJournalExport(head: Buffer): boolean {
  if (head.length < 4 || head[0] !== 95 || head[1] !== 95) return false;
  const newline = head.indexOf(NEWLINE);
  const line = head.toString('latin1', 0, newline < 0 ? head.length : newline);
  return /^__[A-Z][A-Z0-9_]*=/.test(line);
}

/**
 * `journalctl -o verbose` (output_verbose() in systemd's src/shared/logs-show.c): an entry starts
 * with a line of its time and cursor (`Wed 2017-11-01 11:59:32.962000 CDT [s=…;i=…;b=…;m=…;t=…;x=…]`),
 * then each field on a line of its own, indented 4 spaces (`    KEY=value`); the later lines of a
 * value are indented to where the value starts. A value that is not printable shows as
 * `[1.2K blob data]`. The entry's realtime is the cursor's `t=` (hex µs), its sequence number `i=`.
 */
export class JournalVerboseParser {
  private entry: Record<string, string | string[]> | null = null;
  private key = '';
  private indent = 0;

  constructor(private readonly onEntry: (entry: Record<string, string | string[]>) => void) {}

  line(line: string): void {
    if (VERBOSE_HEADER.test(line)) {
      this.end();
      const cursor = line.slice(line.lastIndexOf('[') + 1, -1);
      this.entry = Object.create(null) as Record<string, string | string[]>;
      this.entry['__CURSOR'] = cursor;
      const realtime = /(?:^|;)t=([0-9a-f]+)(?:;|$)/.exec(cursor)?.[1];
      if (realtime !== undefined) this.entry['__REALTIME_TIMESTAMP'] = BigInt(`0x${realtime}`).toString();
      this.key = '';
      return;
    }
    const entry = this.entry;
    if (entry === null) return;
    if (line.startsWith('    ') && line.charCodeAt(4) !== 32) {
      const equals = line.indexOf('=');
      if (equals < 0) return;
      this.key = line.slice(4, equals);
      this.indent = equals + 1;
      const value = line.slice(equals + 1);
      const previous = entry[this.key];
      if (previous === undefined) entry[this.key] = value;
      else if (Array.isArray(previous)) previous.push(value);
      else entry[this.key] = [previous, value];
      return;
    }
    if (this.key !== '' && line.length > this.indent && line.slice(0, this.indent).trim() === '') {
      const previous = entry[this.key];
      const more = `\n${line.slice(this.indent)}`;
      if (Array.isArray(previous)) previous[previous.length - 1] += more;
      else entry[this.key] = (previous ?? '') + more;
    }
  }

  end(): void {
    if (this.entry !== null) this.onEntry(this.entry);
    this.entry = null;
  }
}

const VERBOSE_HEADER = /^[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: \S+)? \[s=[0-9a-f]+;i=[0-9a-f]+;[^\]]*\]$/;

/** Whether a first line (journalctl's `-- … --` lines passed over) is the head of a verbose entry. */
export function looksLikeJournalVerbose(head: Buffer): boolean {
  for (const line of head.toString('latin1').split('\n')) {
    if (line.startsWith('-- ') && line.endsWith('--')) continue;
    return VERBOSE_HEADER.test(line);
  }
  return false;
}
