// Tests src/ingest/line-layout.ts (owned by the engine; kept beside the engine tests that depend on it).
import { describe, expect, it } from 'vitest';
import { headerTimeToEpochMs, isHeaderLine, parseLineHeader } from '../../src/ingest/line-layout.js';
import { CHANNEL_INIT_SEED, INFO_1971, LEAK_1678, LEAK_2292, OODM_JOURNALD_1690, RESET_5936, RESET_CANCEL_2247, TAIL_RESET_SEED, UNKNOWN_CHANNEL_2247 } from './fixtures.js';

describe('isHeaderLine / parseLineHeader', () => {
  it('recognises the linkerd JUL layout, with and without TraceId', () => {
    expect(parseLineHeader(OODM_JOURNALD_1690[0] as string)).toEqual({
      layout: 'linkerd',
      level: 'WARN',
      time: '1101 14:10:26.714 UTC',
      thread: 'THREAD42',
      text: 'Unhandled exception in connection with /10.49.154.23:42176, shutting down connection',
    });
    const traced = parseLineHeader(RESET_CANCEL_2247[0] as string);
    expect(traced?.thread).toBe('THREAD22');
    expect(traced?.text.startsWith('Exception propagated to the default monitor')).toBe(true);
    expect(parseLineHeader(INFO_1971)?.level).toBe('INFO');
    expect(parseLineHeader(UNKNOWN_CHANNEL_2247[0] as string)?.level).toBe('ERROR');
  });

  it('recognises log4j through linkerd, also after the space journald leaves for an empty host', () => {
    const header = parseLineHeader(LEAK_1678[0] as string);
    expect(header).toMatchObject({ layout: 'log4j', level: 'ERROR', time: '1019 21:54:39.902 UTC', thread: 'finagle/netty4-7' });
    expect(header?.text.startsWith('LEAK: ByteBuf.release()')).toBe(true);
    expect(parseLineHeader(` ${TAIL_RESET_SEED[0] as string}`)?.thread).toBe('finagle/netty4-6');
    expect(isHeaderLine(CHANNEL_INIT_SEED[0] as string)).toBe(true);
  });

  it('recognises ISO/logback and uncaught-exception headers', () => {
    // reactor/reactor-netty#1900 (https://github.com/reactor/reactor-netty/issues/1900): Spring Boot layout.
    const spring = "2021-12-01 00:45:18.381 ERROR 331 --- [           main] io.netty.util.ResourceLeakDetector       : LEAK: ByteBuf.release() was not called before it's garbage-collected.";
    expect(parseLineHeader(spring)).toMatchObject({ layout: 'iso', level: 'ERROR', time: '2021-12-01 00:45:18.381' });
    expect(parseLineHeader('2024-05-01T12:00:00Z starting')).toMatchObject({ layout: 'iso', time: '2024-05-01T12:00:00Z', text: 'starting' });
    expect(parseLineHeader('Exception in thread "main" java.lang.OutOfMemoryError: Java heap space')).toMatchObject({
      layout: 'uncaught',
      thread: 'main',
      text: 'java.lang.OutOfMemoryError: Java heap space',
    });
  });

  it('rejects exception lines, frames, leak records and near-misses', () => {
    const notHeaders = [
      ...OODM_JOURNALD_1690.slice(1),
      ...UNKNOWN_CHANNEL_2247.slice(1),
      ...TAIL_RESET_SEED.slice(1),
      ...LEAK_2292.slice(1),
      ...RESET_5936,
      RESET_CANCEL_2247[1] as string,
      'I 1101 started',
      'W 1101 14:10:26.714 UTC: no thread',
      'INFO 1101 starting',
      'WARNING: 3 leak records were discarded because the leak record count is limited to 4.',
      'Exception in thread main',
      '',
    ];
    for (const line of notHeaders) {
      expect({ line, header: isHeaderLine(line) }).toEqual({ line, header: false });
      expect(parseLineHeader(line)).toBeNull();
    }
  });
});

describe('headerTimeToEpochMs', () => {
  const receivedNov5 = Date.UTC(2017, 10, 5);

  it('applies zone abbreviations and takes the year from the reference', () => {
    const cdt = parseLineHeader(CHANNEL_INIT_SEED[0] as string);
    expect(cdt && new Date(headerTimeToEpochMs(cdt, receivedNov5) as number).toISOString()).toBe('2017-11-01T16:59:32.962Z');
    const pst = parseLineHeader(RESET_CANCEL_2247[0] as string);
    expect(pst && new Date(headerTimeToEpochMs(pst, Date.UTC(2019, 2, 9)) as number).toISOString()).toBe('2019-03-08T20:05:12.528Z');
  });

  it('puts a line logged before new year into the old year', () => {
    const header = parseLineHeader('W 1231 23:59:59.900 UTC THREAD7: late');
    expect(header && new Date(headerTimeToEpochMs(header, Date.UTC(2018, 0, 1, 0, 0, 5)) as number).toISOString()).toBe('2017-12-31T23:59:59.900Z');
  });

  it('reads numeric offsets and ISO times; unknown zones give undefined', () => {
    const offset = parseLineHeader('2024-05-01T12:00:00.5+02:00 x');
    expect(offset && headerTimeToEpochMs(offset, 0)).toBe(Date.UTC(2024, 4, 1, 10, 0, 0, 500));
    const numericLinkerd = parseLineHeader('I 0501 12:00:00.000 -0700 THREAD1: x');
    expect(numericLinkerd && headerTimeToEpochMs(numericLinkerd, Date.UTC(2024, 5, 1))).toBe(Date.UTC(2024, 4, 1, 19));
    const unknown = parseLineHeader('I 0501 12:00:00.000 XYZT THREAD1: x');
    expect(unknown && headerTimeToEpochMs(unknown, Date.UTC(2024, 5, 1))).toBeUndefined();
    const uncaught = parseLineHeader('Exception in thread "main" java.lang.NullPointerException');
    expect(uncaught && headerTimeToEpochMs(uncaught, Date.UTC(2024, 5, 1))).toBeUndefined();
  });
});
