/**
 * Records as columns, for handing a decoded batch from a decoding thread to the main one: a
 * structured clone of 30,000 record objects costs the receiving thread about as much as decoding
 * them did, while numbers in typed arrays move without a copy, strings in one array clone fast,
 * and each origin (host, service, pid) is sent once.
 */
import { streamKeyOf, type LogRecord } from './record.js';

export interface PackedRecords {
  count: number;
  time: Float64Array;
  /** NaN where the record has none. */
  sourceUs: Float64Array;
  /** NaN where the record has none. */
  position: Float64Array;
  /** MALFORMED | WITHOUT_TEXT */
  flags: Uint8Array;
  /** Index into `origins`. */
  origin: Uint32Array;
  origins: Array<[host: string, service: string, pid: string]>;
  messages: string[];
  /** The few records that keep the shipper's object (metrics snapshots, records without text). */
  fields: Array<[index: number, fields: Record<string, unknown>]>;
}

const MALFORMED = 1;
const WITHOUT_TEXT = 2;

export function packRecords(records: readonly LogRecord[]): { packed: PackedRecords; transfer: ArrayBuffer[] } {
  const count = records.length;
  const packed: PackedRecords = {
    count,
    time: new Float64Array(count),
    sourceUs: new Float64Array(count),
    position: new Float64Array(count),
    flags: new Uint8Array(count),
    origin: new Uint32Array(count),
    origins: [],
    messages: new Array<string>(count),
    fields: [],
  };
  const originIndex = new Map<string, number>();
  for (let index = 0; index < count; index++) {
    const record = records[index] as LogRecord;
    packed.time[index] = record.time;
    packed.sourceUs[index] = record.sourceUs ?? Number.NaN;
    packed.position[index] = record.position ?? Number.NaN;
    packed.flags[index] = (record.malformed === true ? MALFORMED : 0) | (record.withoutText === true ? WITHOUT_TEXT : 0);
    let origin = originIndex.get(record.stream);
    if (origin === undefined) {
      origin = packed.origins.length;
      originIndex.set(record.stream, origin);
      packed.origins.push([record.host, record.service, record.pid]);
    }
    packed.origin[index] = origin;
    packed.messages[index] = record.message;
    if (record.fields !== undefined) packed.fields.push([index, record.fields]);
  }
  const transfer = [packed.time.buffer, packed.sourceUs.buffer, packed.position.buffer, packed.flags.buffer, packed.origin.buffer] as ArrayBuffer[];
  return { packed, transfer };
}

/** The records again, with the same properties as the decoder made (absent ones left out). */
export function unpackRecords(packed: PackedRecords): LogRecord[] {
  const streams = packed.origins.map(([host, service, pid]) => ({ host, service, pid, stream: streamKeyOf(host, service, pid) }));
  const records = new Array<LogRecord>(packed.count);
  for (let index = 0; index < packed.count; index++) {
    const origin = streams[packed.origin[index] as number] as { host: string; service: string; pid: string; stream: string };
    const record: LogRecord = {
      time: packed.time[index] as number,
      host: origin.host,
      service: origin.service,
      pid: origin.pid,
      stream: origin.stream,
      message: packed.messages[index] as string,
    };
    const sourceUs = packed.sourceUs[index] as number;
    if (sourceUs === sourceUs) record.sourceUs = sourceUs;
    const position = packed.position[index] as number;
    if (position === position) record.position = position;
    const flags = packed.flags[index] as number;
    if ((flags & MALFORMED) !== 0) record.malformed = true;
    if ((flags & WITHOUT_TEXT) !== 0) record.withoutText = true;
    records[index] = record;
  }
  for (const [index, fields] of packed.fields) (records[index] as LogRecord).fields = fields;
  return records;
}
