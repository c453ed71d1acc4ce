import { describe, expect, it } from 'vitest';
import { recordFromJournalObject, recordFromTextLine } from '../../src/ingest/journald-short.js';

// Lines from the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io, November 2017)
// and journalctl's documented output modes (systemd man page journalctl(1), --output=short*).
const RECEIVED = Date.UTC(2017, 10, 5, 12, 0, 0);

describe('recordFromTextLine', () => {
  it('short with host and ident[pid]', () => {
    const record = recordFromTextLine('Nov 01 11:59:32 web-1 linkerd[5699]: I 1101 11:59:32.962 UTC THREAD10: hi', RECEIVED);
    expect(record).toMatchObject({ host: 'web-1', service: 'linkerd', pid: '5699', message: 'I 1101 11:59:32.962 UTC THREAD10: hi' });
    // The linkerd header's time (milliseconds, a zone) beats journalctl's zone-less seconds.
    expect(record?.time).toBe(Date.UTC(2017, 10, 1, 11, 59, 32, 962));
  });

  it('short-iso keeps journald\'s own (zoned) time', () => {
    const record = recordFromTextLine('2017-11-01T11:59:32+0000 web-1 linkerd[5699]: I 1101 11:59:33.962 UTC THREAD10: hi', RECEIVED);
    expect(record?.time).toBe(Date.UTC(2017, 10, 1, 11, 59, 32));
  });

  it('seed: host missing', () => {
    const record = recordFromTextLine(
      'Nov 01 11:59:32 linkerd[5699]: WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel. Closing: [id: 0xda8ab2a4, L:/ - R:/]',
      RECEIVED,
    );
    expect(record).toMatchObject({ host: '', service: 'linkerd', pid: '5699' });
    expect(record?.message.startsWith('WARN 1101')).toBe(true);
  });

  it('seed: host and identifier missing keep the message (with its own leading space)', () => {
    const header = recordFromTextLine('Nov 03 17:36:55  WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired', RECEIVED);
    expect(header).toMatchObject({ host: '', service: '', pid: '', message: ' WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired' });
    expect(recordFromTextLine('Nov 03 17:36:55 Connection reset by peer', RECEIVED)?.message).toBe('Connection reset by peer');
    expect(recordFromTextLine('Nov 03 17:36:55 Caused by: java.io.IOException: x', RECEIVED)).toMatchObject({ host: '', service: '', message: 'Caused by: java.io.IOException: x' });
  });

  it('short-precise, short-iso, short-iso-precise', () => {
    expect(recordFromTextLine('Nov 01 11:59:32.123456 web-1 linkerd[5699]: m', RECEIVED)?.time).toBe(Date.UTC(2017, 10, 1, 11, 59, 32, 123));
    expect(recordFromTextLine('2017-11-01T11:59:32+0000 web-1 linkerd[5699]: m', RECEIVED)).toMatchObject({ host: 'web-1', pid: '5699', time: Date.UTC(2017, 10, 1, 11, 59, 32) });
    expect(recordFromTextLine('2017-11-01T06:59:32.5-05:00 web-1 kernel: m', RECEIVED)).toMatchObject({ service: 'kernel', pid: '', time: Date.UTC(2017, 10, 1, 11, 59, 32, 500) });
  });

  it('year: the latest that does not put the line in the future (Dec 31 received on Jan 1)', () => {
    expect(recordFromTextLine('Dec 31 23:59:59 h s[1]: m', Date.UTC(2018, 0, 1, 0, 0, 5))?.time).toBe(Date.UTC(2017, 11, 31, 23, 59, 59));
  });

  it('a line of April read in December is of this April, not the next (linkerd/linkerd#1193 lines)', () => {
    // https://github.com/linkerd/linkerd/issues/1193: `Apr 10 20:58:15 ip-10-48-216-171 namerd[8504]: java.lang.OutOfMemoryError: Java heap space`
    const line = 'Apr 10 20:58:15 ip-10-48-216-171 namerd[8504]: java.lang.OutOfMemoryError: Java heap space';
    const december = Date.UTC(2026, 11, 1, 14, 0, 0);
    expect(recordFromTextLine(line, december)).toMatchObject({ host: 'ip-10-48-216-171', service: 'namerd', pid: '8504', time: Date.UTC(2026, 3, 10, 20, 58, 15) });
    // A day of clock skew is allowed (journalctl prints local time, read as UTC); more is last year.
    expect(recordFromTextLine('Dec 02 10:00:00 h s[1]: m', december)?.time).toBe(Date.UTC(2026, 11, 2, 10, 0, 0));
    expect(recordFromTextLine('Dec 05 10:00:00 h s[1]: m', december)?.time).toBe(Date.UTC(2025, 11, 5, 10, 0, 0));
  });

  it('journalctl markers and empty lines carry no record', () => {
    expect(recordFromTextLine('-- Logs begin at Wed 2017-11-01 10:00:00 CDT, end at Fri 2017-11-03 17:40:00 CDT. --', RECEIVED)).toBeNull();
    expect(recordFromTextLine('-- No entries --', RECEIVED)).toBeNull();
    expect(recordFromTextLine('', RECEIVED)).toBeNull();
  });

  it('bare linkerd line: the header gives the time', () => {
    const record = recordFromTextLine('W 1101 14:10:26.714 UTC THREAD10: hi', RECEIVED);
    expect(record).toMatchObject({ host: '', service: '', pid: '', time: Date.UTC(2017, 10, 1, 14, 10, 26, 714) });
    expect(recordFromTextLine('\tat io.netty.buffer.PoolArena.allocate(PoolArena.java:214)', RECEIVED)?.time).toBe(RECEIVED);
  });
});

// journalctl's other time-carrying short modes (man journalctl --output; systemd src/shared/logs-show.c,
// output_timestamp_realtime()/output_timestamp_monotonic()); the lines are systemd 252's own, from
// test/fixtures/journald (make-fixtures.sh), and that file's header line of linkerd/linkerd#1690.
describe('recordFromTextLine: short-full, with-unit, short-unix, short-monotonic, short-delta', () => {
  const message = 'I 1101 11:59:30.291 UTC THREAD1: netty-repro edge-a/4101: Netty 4.1.48.Final on Java 17.0.15 (linkerd 1.x log layout: jul)';

  it('short-full: weekday, date, time and the zone journalctl names (CDT read with its offset)', () => {
    const record = recordFromTextLine(`Fri 2024-11-01 06:59:30 CDT edge-a linkerd[4101]: ${message}`, RECEIVED);
    expect(record).toMatchObject({ host: 'edge-a', service: 'linkerd', pid: '4101', message, time: Date.UTC(2024, 10, 1, 11, 59, 30), sourceUs: Date.UTC(2024, 10, 1, 11, 59, 30) * 1000 });
  });

  it('short-full: UTC, a numeric zone, an unknown abbreviation (local time read as UTC, the header decides) and no zone', () => {
    expect(recordFromTextLine(`Fri 2024-11-01 11:59:30 UTC edge-a linkerd[4101]: x`, RECEIVED)).toMatchObject({ host: 'edge-a', time: Date.UTC(2024, 10, 1, 11, 59, 30) });
    expect(recordFromTextLine(`Fri 2024-11-01 14:59:30 +03 edge-a linkerd[4101]: x`, RECEIVED)).toMatchObject({ host: 'edge-a', time: Date.UTC(2024, 10, 1, 11, 59, 30) });
    // CEST is not in the table: the time is local, zone unknown; the linkerd header's UTC time wins.
    expect(recordFromTextLine(`Fri 2024-11-01 13:59:30 CEST edge-a linkerd[4101]: ${message}`, RECEIVED)).toMatchObject({ host: 'edge-a', time: Date.UTC(2024, 10, 1, 11, 59, 30, 291) });
    // systemd leaves the zone out when it does not fit its buffer.
    expect(recordFromTextLine(`Fri 2024-11-01 11:59:30 edge-a linkerd[4101]: x`, RECEIVED)).toMatchObject({ host: 'edge-a', service: 'linkerd', pid: '4101', message: 'x' });
  });

  it('with-unit: the unit in place of the identifier', () => {
    expect(recordFromTextLine(`Fri 2024-11-01 06:59:30 CDT edge-a linkerd.service[4101]: ${message}`, RECEIVED)).toMatchObject({ host: 'edge-a', service: 'linkerd.service', pid: '4101', message });
  });

  it('short-unix: seconds and microseconds since the epoch', () => {
    const record = recordFromTextLine(`1730462370.291545 edge-a linkerd[4101]: ${message}`, RECEIVED);
    expect(record).toMatchObject({ host: 'edge-a', service: 'linkerd', pid: '4101', message, time: Date.UTC(2024, 10, 1, 11, 59, 30, 291) });
  });

  it('short-monotonic and short-delta: time since boot, so the date comes from the log header', () => {
    for (const prefix of ['[259204.613532]', '[  1204.613532]', '[259204.613532                ]', '[950401.235879 <    0.306680*>]', '[950401.235879 <    0.306680 >]']) {
      const record = recordFromTextLine(`${prefix} edge-a linkerd[4101]: ${message}`, RECEIVED);
      expect(record, prefix).toMatchObject({ host: 'edge-a', service: 'linkerd', pid: '4101', message, time: Date.UTC(2017, 10, 1, 11, 59, 30, 291) });
    }
    // The boot clock orders and times the stream (its silences), in µs.
    expect(recordFromTextLine(`[259204.613532] edge-a linkerd[4101]: x`, RECEIVED)?.sourceUs).toBe(259_204_613_532);
    // No header: nothing dates the line but its reading.
    expect(recordFromTextLine(`[259204.613532] edge-a linkerd[4101]: at io.netty.Foo.bar(Foo.java:1)`, RECEIVED)?.time).toBe(RECEIVED);
  });

  it('look-alikes are messages: a bare number, a bracketed word, a weekday sentence', () => {
    expect(recordFromTextLine('1730462370 edge-a linkerd[4101]: x', RECEIVED)).toMatchObject({ host: '', service: '', message: '1730462370 edge-a linkerd[4101]: x' });
    expect(recordFromTextLine('[main] INFO o.a.c.Foo - started in 12.5 s', RECEIVED)).toMatchObject({ host: '', service: '' });
    expect(recordFromTextLine('Wed is when the batch job runs on edge-a', RECEIVED)).toMatchObject({ host: '', service: '' });
  });
});

describe('recordFromJournalObject', () => {
  it('journalctl -o json, MESSAGE as a byte array (non-UTF-8 fields), µs realtime', () => {
    const record = recordFromJournalObject(
      { MESSAGE: [...Buffer.from('caf\u00e9')], _HOSTNAME: 'web-1', SYSLOG_IDENTIFIER: 'linkerd', _PID: '5699', __REALTIME_TIMESTAMP: '1509555572962000' },
      RECEIVED,
    );
    expect(record).toMatchObject({ message: 'café', host: 'web-1', service: 'linkerd', pid: '5699', time: 1509555572962 });
  });

  it('Fluent Bit strip_underscores + lowercase spellings', () => {
    expect(recordFromJournalObject({ message: 'm', hostname: 'h', syslog_identifier: 's', pid: '7' }, RECEIVED)).toMatchObject({ host: 'h', service: 's', pid: '7' });
    expect(recordFromJournalObject({ MESSAGE: 'm', HOSTNAME: 'h', SYSTEMD_UNIT: 'u.service', PID: '8' }, RECEIVED)).toMatchObject({ host: 'h', service: 'u.service', pid: '8' });
  });

  it('a message carrying a journald prefix gives host/service/pid and loses the prefix', () => {
    const record = recordFromJournalObject({ message: 'Nov 01 11:59:32 web-2 linkerd[5699]: hello', host: 'collector' }, RECEIVED);
    expect(record).toMatchObject({ host: 'web-2', service: 'linkerd', pid: '5699', message: 'hello', time: Date.UTC(2017, 10, 1, 11, 59, 32) });
  });

  it('kubernetes metadata', () => {
    expect(recordFromJournalObject({ log: 'x', kubernetes: { pod_name: 'l5d-abc', container_name: 'l5d' } }, RECEIVED)).toMatchObject({ host: 'l5d-abc', service: 'l5d' });
  });
});

describe('throughput (measured, not asserted)', () => {
  it("parses journald short lines", () => {
    for (let warm = 0; warm < 50_000; warm++) recordFromTextLine(`Nov 01 11:59:32 web-1 linkerd[5699]: warm ${warm}`, RECEIVED);
    const lines = Array.from({ length: 200_000 }, (_, index) => `Nov 01 11:59:${String(index % 60).padStart(2, '0')} web-1 linkerd[5699]: at io.netty.buffer.PoolArena.allocate(PoolArena.java:${index})`);
    const start = performance.now();
    let parsed = 0;
    for (const line of lines) if (recordFromTextLine(line, RECEIVED) !== null) parsed++;
    const seconds = (performance.now() - start) / 1000;
    console.log(`journald short: ${Math.round(parsed / seconds)} lines/s`);
    expect(parsed).toBe(lines.length);
  });

  it('origins remembered from earlier lines never take over a line whose tokens differ', () => {
    const reference = Date.UTC(2017, 10, 5);
    expect(recordFromTextLine('Nov 01 11:59:32 web-1 linkerd[5699]: first', reference)).toMatchObject({ host: 'web-1', service: 'linkerd', pid: '5699', message: 'first' });
    // Text glued to the colon is no journald origin (journalctl always writes `: `), remembered or not.
    expect(recordFromTextLine('Nov 01 11:59:33 web-1 linkerd[5699]:second', reference)).toMatchObject({ host: '', service: '', pid: '', message: 'web-1 linkerd[5699]:second' });
    expect(recordFromTextLine('Nov 01 11:59:34 web-1 linkerd[56990]: third', reference)).toMatchObject({ pid: '56990', message: 'third' });
    expect(recordFromTextLine('Nov 01 11:59:35 web-1 linkerd[5699]: fourth', reference)).toMatchObject({ pid: '5699', message: 'fourth', stream: 'web-1\u001flinkerd\u001f5699' });
  });
});
