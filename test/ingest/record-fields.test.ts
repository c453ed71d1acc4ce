/**
 * What a record's fields become, posted to the real ingest route on loopback: the line's own time
 * beats a shipper's read time, GELF and syslog-parser field names are understood, and a record
 * with no text field is counted, never quietly dropped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/ingest/record.js';
import { post, startIngestServer, type TestServer } from './server-harness.js';

// A line from the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io,
// November 2017), as `journalctl -o short` printed it, host restored.
const SEED_LINE =
  'Nov 01 11:59:32 web-1 linkerd[5699]: WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel. Closing: [id: 0xda8ab2a4, L:/ - R:/]';
/** The header's own time: 11:59:32.962 CDT is 16:59:32.962 UTC. */
const HEADER_TIME = Date.UTC(2017, 10, 1, 16, 59, 32, 962);
/** When Fluent Bit's tail read the file: three days later (a backlog, or a restart that re-read it). */
const READ_TIME_S = Date.UTC(2017, 10, 4, 9, 0, 0, 125) / 1000;

let server: TestServer;
beforeAll(async () => {
  server = await startIngestServer();
});
afterAll(() => server.close());

async function recordsOf(body: string, contentType: string): Promise<{ answer: Record<string, unknown>; records: LogRecord[] }> {
  const before = server.batches.length;
  const answer = await post(`${server.url}/ingest`, body, { 'content-type': contentType });
  expect(answer.status, JSON.stringify(answer.json)).toBe(200);
  return { answer: answer.json, records: server.batches.slice(before).flat() };
}

describe('times', () => {
  it("Fluent Bit tail's `date` (the read time) does not date the line; the line's own header does", async () => {
    // Fluent Bit `tail` + out_http `Format json`: `date` first, then the raw line under `log`.
    const { records } = await recordsOf(JSON.stringify([{ date: READ_TIME_S, log: SEED_LINE }]), 'application/json');
    expect(records[0]).toMatchObject({ time: HEADER_TIME, host: 'web-1', service: 'linkerd', pid: '5699', sourceUs: Math.round(READ_TIME_S * 1e6) });
  });

  it('the same line as text, as JSON with `date`, and as JSON without it (`json_date_key false`) gets one time', async () => {
    const text = (await recordsOf(`${SEED_LINE}\n`, 'text/plain')).records[0];
    const withDate = (await recordsOf(JSON.stringify({ date: READ_TIME_S, log: SEED_LINE }), 'application/json')).records[0];
    const withoutDate = (await recordsOf(JSON.stringify({ log: SEED_LINE }), 'application/json')).records[0];
    expect([text?.time, withDate?.time, withoutDate?.time]).toEqual([HEADER_TIME, HEADER_TIME, HEADER_TIME]);
  });

  it('two records read in the same millisecond keep their own times', async () => {
    const second = SEED_LINE.replace('11:59:32.962', '11:59:33.480');
    const { records } = await recordsOf(JSON.stringify([{ date: READ_TIME_S, log: SEED_LINE }, { date: READ_TIME_S, log: second }]), 'application/json');
    expect(records.map((record) => record.time)).toEqual([HEADER_TIME, HEADER_TIME + 518]);
  });

  it("journald's realtime and sequence number order a stream; its source time dates a line without a header", async () => {
    const entry = {
      __CURSOR: 's=bd8b06d487ccb112a7de98acddcbf824;i=4a11;b=3d836d081c31d44ed075ecbbf126981a;m=3c59cc859c;t=625d8aae0df59;x=93f09ec15b7ab796',
      __REALTIME_TIMESTAMP: '1730462370291545',
      _SOURCE_REALTIME_TIMESTAMP: '1730462370290001',
      _HOSTNAME: 'edge-a',
      SYSLOG_IDENTIFIER: 'linkerd',
      _PID: '4101',
      MESSAGE: 'java.io.IOException: Connection reset by peer',
    };
    const { records } = await recordsOf(JSON.stringify(entry), 'application/json');
    expect(records[0]).toMatchObject({ time: 1730462370290, sourceUs: 1730462370291545, position: 0x4a11 });
  });
});

describe('field names of other shippers', () => {
  it('Fluent Bit `Format gelf`: short_message/full_message, `_`-prefixed fields, no record dropped', async () => {
    // Fluent Bit's GELF encoder (src/flb_pack_gelf.c) prefixes every field but its own with `_`:
    // `_PID` arrives as `__PID`, `SYSLOG_IDENTIFIER` as `_SYSLOG_IDENTIFIER`; timestamp is `sec.ms`.
    const gelf = [
      { version: '1.1', short_message: 'W 1101 14:10:26.714 UTC THREAD42: Unhandled exception in connection with /10.49.154.23:42176, shutting down connection', host: 'web-1', _SYSLOG_IDENTIFIER: 'linkerd', __PID: '2410', timestamp: 1509545426.714 },
      { version: '1.1', short_message: 'io.netty.util.internal.OutOfDirectMemoryError', full_message: 'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)', host: 'web-1', _SYSLOG_IDENTIFIER: 'linkerd', __PID: '2410', timestamp: 1509545426.715 },
    ];
    const { answer, records } = await recordsOf(gelf.map((object) => JSON.stringify(object) + '\n').join(''), 'application/json');
    expect(answer).toEqual({ accepted: 2, malformed: 0, without_text: 0 });
    expect(records.map((record) => [record.host, record.service, record.pid, record.message.slice(0, 40)])).toEqual([
      ['web-1', 'linkerd', '2410', 'W 1101 14:10:26.714 UTC THREAD42: Unhand'],
      ['web-1', 'linkerd', '2410', 'io.netty.util.internal.OutOfDirectMemory'],
    ]);
    expect(records[1]?.message).toContain('(used: 1037041958, max: 1037959168)');
  });

  it("Fluent Bit's syslog parsers name the program `ident` (rfc3164) or `appname` (rfc5424)", async () => {
    // conf/parsers.conf `syslog-rfc3164`: pri, time, host, ident, pid, message; `syslog-rfc5424`: ..., appname, procid, msgid, ...
    const body = [
      { pri: '30', time: 'Nov  1 11:59:32', host: 'web-1', ident: 'linkerd', pid: '5699', message: 'I 1101 11:59:32.000 UTC THREAD1: linkerd 1.3.1' },
      { pri: '30', time: '2017-11-01T11:59:32.000Z', host: 'web-2', appname: 'namerd', procid: '811', msgid: '-', message: 'I 1101 11:59:32.000 UTC THREAD1: namerd 1.3.1' },
    ];
    const { records } = await recordsOf(JSON.stringify(body), 'application/json');
    expect(records.map((record) => [record.host, record.service, record.pid])).toEqual([
      ['web-1', 'linkerd', '5699'],
      ['web-2', 'namerd', '811'],
    ]);
  });

  it('tailed raw files: the file name is the stream (Vector `file`, Fluent Bit `Path_Key`), the offset orders it', async () => {
    // Vector's file source with `offset_key: offset`; Fluent Bit's tail with `Path_Key path` and `Offset_Key offset`.
    const body = [
      { file: '/var/log/linkerd/linkerd.log', host: 'web-1', message: 'I 0406 15:09:51.270 UTC THREAD1: linkerd 1.3.6', offset: 812, timestamp: '2018-04-06T15:09:51.300012Z' },
      { path: '/var/log/linkerd/namerd.log', log: 'I 0406 15:09:52.001 UTC THREAD1: namerd 1.3.6', offset: 96, date: 1523027392.0125 },
    ];
    const { records } = await recordsOf(JSON.stringify(body), 'application/json');
    expect(records.map((record) => [record.host, record.service, record.position, record.sourceUs])).toEqual([
      ['web-1', 'linkerd.log', 812, 1523027391300012],
      ['', 'namerd.log', 96, 1523027392012500],
    ]);
  });

  it('a record with none of the text fields is counted in the answer and logged, not silently accepted', async () => {
    const logged: string[] = [];
    const counting = await startIngestServer({ logLines: logged });
    try {
      const body = JSON.stringify([{ date: READ_TIME_S, payload: 'text under a key nobody reads' }, { date: READ_TIME_S, log: SEED_LINE }]);
      const answer = await post(`${counting.url}/ingest`, body, { 'content-type': 'application/json' });
      expect(answer.json).toEqual({ accepted: 2, malformed: 0, without_text: 1 });
      expect(logged.map((line) => JSON.parse(line) as { withoutText?: number; keys?: string[] }).find((entry) => entry.withoutText === 1)?.keys).toEqual(['date', 'payload']);
      // A metrics snapshot (linkerd's /admin/metrics.json) has no text either, but is data of its own.
      const snapshot = await post(`${counting.url}/ingest`, JSON.stringify({ 'jvm/mem/buffer/direct/used': 1024, host: 'web-1' }), { 'content-type': 'application/json' });
      expect(snapshot.json).toEqual({ accepted: 1, malformed: 0, without_text: 0 });
    } finally {
      await counting.close();
    }
  });
});
