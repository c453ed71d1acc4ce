// Turns the raw outputs of the two leak runs (run-leak.sh) into the fixture of
// test/fixtures/netty-leak/:
//   edge-c.<pid>.linkerd.log       the raw linkerd stdout of each run
//   edge-c.<pid>.metrics.ndjson    the run's /admin/metrics.json snapshots, with Netty's own counter beside them
//   leak-run.ndjson                what the sink receives, in event-time order: each log line as a
//                                  `journalctl -o json` entry, each snapshot as the event Vector's
//                                  http_client source makes of a scrape (whole body in `message`)
//                                  after the remap of examples/vector-metrics.yaml
//   manifest.json                  per run: limit, when and with what numbers it died, what it logged
// Usage: node build-leak-fixture.mjs WORK_DIR OUT_DIR
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [workDir, outDir] = process.argv.slice(2);
if (!workDir || !outDir) {
  console.error('usage: node build-leak-fixture.mjs WORK_DIR OUT_DIR');
  process.exit(1);
}
const HOST = 'edge-c';
const SERVICE = 'linkerd';
const PIDS = ['4301', '4302'];
const fail = (message) => {
  console.error(`build-leak-fixture: ${message}`);
  process.exit(1);
};

const entries = [];
const runs = [];
let seqnum = 0x7100;
for (const pid of PIDS) {
  const base = `${HOST}.${pid}`;
  const rawLog = readFileSync(join(workDir, `${base}.linkerd.log`), 'utf8');
  const program = JSON.parse(readFileSync(join(workDir, `${base}.manifest.json`), 'utf8'));
  const rawLines = rawLog.slice(0, -1).split('\n');
  let cursor = 0;
  const counts = {};
  let oodm;
  for (const record of program.records) {
    const lines = rawLines.slice(cursor, cursor + record.raw_line_count);
    cursor += record.raw_line_count;
    if (lines[0] !== record.first_line) fail(`${base} #${record.seq}: first line differs from the log`);
    // journald keeps each stdout line, trailing whitespace stripped, empty lines dropped, and stamps it on receipt.
    lines.map((line) => line.replace(/[ \t\r]+$/, '')).filter((line) => line !== '').forEach((message, index) => {
      const realtimeUs = BigInt(record.time_us) + BigInt(index);
      entries.push({
        us: realtimeUs,
        body: {
          __REALTIME_TIMESTAMP: realtimeUs.toString(),
          __SEQNUM: String(++seqnum),
          _HOSTNAME: HOST,
          SYSLOG_IDENTIFIER: SERVICE,
          _PID: pid,
          _SYSTEMD_UNIT: 'linkerd.service',
          _TRANSPORT: 'stdout',
          PRIORITY: '6',
          MESSAGE: message,
        },
      });
    });
    if (record.category !== null) counts[record.category] = (counts[record.category] ?? 0) + 1;
    if (record.category === 'direct-memory-exhausted') {
      oodm = { time: record.time, requested_bytes: record.requested_bytes, used_bytes: record.used_bytes, max_bytes: record.max_bytes };
    }
  }
  if (cursor !== rawLines.length) fail(`${base}: the manifest covers ${cursor} of ${rawLines.length} lines`);
  if (!oodm) fail(`${base}: no OutOfDirectMemoryError`);

  const snapshots = readFileSync(join(workDir, `${base}.metrics.ndjson`), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  for (const snapshot of snapshots) {
    if (Date.parse(snapshot.time) > Date.parse(oodm.time)) continue;
    entries.push({
      us: BigInt(Date.parse(snapshot.time)) * 1000n,
      body: { message: JSON.stringify(snapshot.metrics), source_type: 'http_client', timestamp: snapshot.time, host: HOST, SYSLOG_IDENTIFIER: SERVICE },
    });
  }
  copyFileSync(join(workDir, `${base}.linkerd.log`), join(outDir, `${base}.linkerd.log`));
  copyFileSync(join(workDir, `${base}.metrics.ndjson`), join(outDir, `${base}.metrics.ndjson`));
  runs.push({
    pid,
    base_time: program.base_time,
    seed: program.seed,
    netty_version: program.netty_version,
    java_version: program.java_version,
    snapshots: snapshots.length,
    first_snapshot: snapshots[0].time,
    last_snapshot: snapshots.at(-1).time,
    log_records: program.records.length,
    events: counts,
    oodm,
  });
}

entries.sort((a, b) => (a.us < b.us ? -1 : a.us > b.us ? 1 : 0));
writeFileSync(join(outDir, 'leak-run.ndjson'), `${entries.map((e) => JSON.stringify(e.body)).join('\n')}\n`);
const manifest = {
  generated_by: 'examples/netty-repro/run-leak.sh',
  versions: readFileSync(join(workDir, 'versions.txt'), 'utf8').trim().split('\n'),
  host: HOST,
  service: SERVICE,
  netty_max_direct_memory: runs[0].oodm.max_bytes,
  speed: 60,
  scrape_every_event_seconds: 30,
  entries: entries.length,
  runs,
};
writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`build-leak-fixture: ${entries.length} entries; ` + runs.map((r) => `${r.pid}: OODM at ${r.oodm.time}, ${r.snapshots} snapshots`).join('; '));
