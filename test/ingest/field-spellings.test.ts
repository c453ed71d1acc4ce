/**
 * Every spelling of every field a record is read by, alone beside its message and among others:
 * recordFromObject looks through a key list only when one pass over the record's keys found one
 * of its keys, so a spelling missing from that pass would be silently ignored. The spellings are
 * the shippers' own: journald's fields (systemd.journal-fields(7)), Vector's journald source
 * renames (https://vector.dev/docs/reference/configuration/sources/journald/), Fluent Bit's systemd
 * input `Lowercase`/`Strip_Underscores` and tail `Offset_Key`/`Path_Key`
 * (https://docs.fluentbit.io/manual/pipeline/inputs/systemd), syslog parsers' `ident`/`pid` and RFC
 * 5424 `appname`/`procid`, GELF (https://go2docs.graylog.org/current/getting_in_log_data/gelf.html).
 */
import { describe, expect, it } from 'vitest';
import { recordFromObject } from '../../src/ingest/normalize.js';
import { timeValueToUs } from '../../src/ingest/timestamps.js';

const RECEIVED_AT = Date.UTC(2024, 10, 1, 12, 0, 5);
const MESSAGE = 'java.io.IOException: Connection reset by peer';
/** Keys no list has, so that the record is not only the field under test. */
const UNRELATED = { priority: '6', _TRANSPORT: 'stdout', source_type: 'journald' };

function read(fields: Record<string, unknown>) {
  return recordFromObject({ ...UNRELATED, message: MESSAGE, ...fields }, RECEIVED_AT);
}

const MICROS = 1730462370291545;

describe('each spelling of a field is read', () => {
  it.each(['host', '_HOSTNAME', 'HOSTNAME', '_hostname', 'hostname'])('host from %s', (key) => {
    expect(read({ [key]: 'edge-a' }).host).toBe('edge-a');
  });

  it.each(['SYSLOG_IDENTIFIER', 'syslog_identifier', '_SYSTEMD_UNIT', 'SYSTEMD_UNIT', '_systemd_unit', 'systemd_unit', 'container_name', 'ident', 'appname'])(
    'service from %s',
    (key) => {
      expect(read({ [key]: 'linkerd' }).service).toBe('linkerd');
    },
  );

  it.each(['_PID', 'PID', '_pid', 'pid', 'procid'])('pid from %s', (key) => {
    expect(read({ [key]: '4101' }).pid).toBe('4101');
  });

  it.each(['message', 'MESSAGE', 'log', 'msg', 'full_message'])('message from %s', (key) => {
    expect(recordFromObject({ ...UNRELATED, [key]: MESSAGE }, RECEIVED_AT).message).toBe(MESSAGE);
  });

  it.each(['__REALTIME_TIMESTAMP', '_REALTIME_TIMESTAMP', 'REALTIME_TIMESTAMP', '__realtime_timestamp', '_realtime_timestamp', 'realtime_timestamp'])(
    'source clock (µs) from %s',
    (key) => {
      expect(read({ [key]: String(MICROS) }).sourceUs).toBe(MICROS);
    },
  );

  it.each(['timestamp', 'date', 'time', '@timestamp'])('source clock from %s', (key) => {
    expect(read({ [key]: '2024-11-01T12:00:00.291545Z' }).sourceUs).toBe(Date.UTC(2024, 10, 1, 12) * 1000 + 291545);
  });

  it.each(['_SOURCE_REALTIME_TIMESTAMP', 'SOURCE_REALTIME_TIMESTAMP', '_source_realtime_timestamp', 'source_realtime_timestamp'])('event time from %s', (key) => {
    expect(read({ [key]: String(MICROS) }).time).toBe(Math.floor(MICROS / 1000));
  });

  it.each(['__SEQNUM', '_SEQNUM', 'SEQNUM', '__seqnum', 'seqnum', 'offset', 'Offset', 'file_offset'])('position from %s', (key) => {
    expect(read({ [key]: '18961' }).position).toBe(18961);
  });

  it('position from the i= part of __CURSOR, and from a nested log.offset (Elastic Common Schema)', () => {
    expect(read({ __CURSOR: 's=bd8b06d487ccb112a7de98acddcbf824;i=4a11;b=3d836d081c31d44ed075ecbbf126981a' }).position).toBe(0x4a11);
    expect(recordFromObject({ ...UNRELATED, message: MESSAGE, log: { offset: 18961 } }, RECEIVED_AT).position).toBe(18961);
  });

  it.each(['file', 'path', 'filename'])('service from the name of the file in %s when nothing else names it', (key) => {
    expect(read({ [key]: '/var/log/linkerd/linkerd.log' }).service).toBe('linkerd.log');
  });

  it('host and service from kubernetes metadata, host from a nested host.name or host.hostname', () => {
    expect(read({ kubernetes: { pod_name: 'l5d-7x2k9', container_name: 'l5d' } })).toMatchObject({ host: 'l5d-7x2k9', service: 'l5d' });
    expect(read({ host: { name: 'edge-b' } }).host).toBe('edge-b');
    expect(read({ host: { hostname: 'edge-c' } }).host).toBe('edge-c');
  });

  it('GELF fields under their `_` prefix, the message in short_message', () => {
    const record = recordFromObject({ version: '1.1', host: 'edge-a', short_message: MESSAGE, __PID: '4101', _SYSLOG_IDENTIFIER: 'linkerd', timestamp: MICROS / 1e6 }, RECEIVED_AT);
    expect(record).toMatchObject({ host: 'edge-a', service: 'linkerd', pid: '4101', message: MESSAGE, sourceUs: MICROS });
  });

  it('a record without a prototype (as some decoders make maps) is read the same', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { ...UNRELATED, message: MESSAGE, _HOSTNAME: 'edge-a', SYSLOG_IDENTIFIER: 'linkerd', _PID: '4101', __SEQNUM: '7' });
    expect(recordFromObject(bare, RECEIVED_AT)).toMatchObject({ host: 'edge-a', service: 'linkerd', pid: '4101', position: 7 });
  });
});

describe('clock texts of digits', () => {
  it('16 digits of µs are read exactly, larger numbers and fractions as Number() reads them', () => {
    expect(timeValueToUs(String(MICROS), true)).toBe(MICROS);
    expect(timeValueToUs(String(Number.MAX_SAFE_INTEGER), true)).toBe(Number.MAX_SAFE_INTEGER);
    // Summed digit by digit, 20 digits drift from the nearest double (12345678901234570000).
    expect(timeValueToUs('12345678901234567891', true)).toBe(12345678901234567000);
    expect(timeValueToUs('1730462370.291545')).toBe(MICROS);
    // ns since the epoch (19 digits), told apart by magnitude.
    expect(timeValueToUs('1730462370291545000')).toBe(MICROS);
  });

  it('a text that only starts with digits is no number: µs fields refuse it, others try it as a date', () => {
    expect(timeValueToUs('1730462370291545x', true)).toBeUndefined();
    expect(timeValueToUs('12.', true)).toBeUndefined();
    expect(timeValueToUs('.5', true)).toBeUndefined();
    expect(timeValueToUs('1e15', true)).toBeUndefined();
    expect(timeValueToUs('2024-11-01T12:00:00Z')).toBe(Date.UTC(2024, 10, 1, 12) * 1000);
  });
});
