/**
 * A journald entry (`journalctl -o json`) as each shipper's journald input turns it into a record,
 * for bodies posted the way the shippers post them (test/fixtures/shippers/bodies.ts cites the
 * shippers' sources for each shape).
 */
export type JournalEntry = Record<string, string>;

/** The entry's data fields: what fluent-plugin-systemd and Fluent Bit's systemd input keep (no `__` address fields). */
export function journalDataFields(entry: JournalEntry): JournalEntry {
  return Object.fromEntries(Object.entries(entry).filter(([key]) => !key.startsWith('__')));
}

/** Fluent Bit `systemd` input + out_http `Format json`: the data fields and `date` (the entry's realtime, seconds). */
export function fluentBitRecord(entry: JournalEntry): Record<string, unknown> {
  const record: Record<string, unknown> = { date: Number(entry['__REALTIME_TIMESTAMP']) / 1e6 };
  for (const [key, value] of Object.entries(entry)) if (!key.startsWith('__')) record[key] = value;
  return record;
}

/** Vector `journald` source + `http` sink (json): MESSAGE → message, _HOSTNAME → host, `timestamp` RFC 3339; keys sorted. */
export function vectorRecord(entry: JournalEntry): Record<string, unknown> {
  const record: Record<string, unknown> = { source_type: 'journald' };
  for (const [key, value] of Object.entries(entry)) {
    if (key === '__CURSOR') continue;
    if (key === 'MESSAGE') record['message'] = value;
    else if (key === '_HOSTNAME') record['host'] = value;
    else record[key] = value;
  }
  const us = Number(entry['__REALTIME_TIMESTAMP']);
  record['timestamp'] = `${new Date(Math.floor(us / 1000)).toISOString().slice(0, -1)}${String(us % 1000).padStart(3, '0')}Z`;
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));
}
