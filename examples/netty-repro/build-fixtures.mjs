// Turns the raw outputs of two NettyFailures runs into the acceptance fixtures:
//   <host>.linkerd.log        the raw linkerd stdout (blank lines kept)
//   two-hosts.journal.txt     `journalctl -o short` view of both hosts, interleaved line by line
//   two-hosts.journal.json    the same entries as `journalctl -o json` lines
//   manifest.json             every logged record per host, with what the analyzer must report
// Usage: node build-fixtures.mjs WORK_DIR OUT_DIR
// WORK_DIR holds <host>.linkerd.log and <host>.manifest.json for edge-a and edge-b, and versions.txt.
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [workDir, outDir] = process.argv.slice(2);
if (!workDir || !outDir) {
  console.error('usage: node build-fixtures.mjs WORK_DIR OUT_DIR');
  process.exit(1);
}

// edge-a plays a host with systemd < 228, whose journald stripped leading whitespace from stdout
// lines (systemd PR #1937; frames arrive as "at io.netty..." as in linkerd#1690). Every journald
// strips trailing whitespace and drops empty lines.
const HOSTS = [
  { host: 'edge-a', stripLeadingWhitespace: true, uptimeAtBaseUs: 86_400_000_000n * 3n + 4_321_987n },
  { host: 'edge-b', stripLeadingWhitespace: false, uptimeAtBaseUs: 86_400_000_000n * 11n + 987_654n },
];
const SERVICE = 'linkerd';
const UNIT = 'linkerd.service';

const fail = (message) => {
  console.error(`build-fixtures: ${message}`);
  process.exit(1);
};

const hexId = (seed) => createHash('sha256').update(seed).digest('hex').slice(0, 32);

function expectedTags(record) {
  const tags = [];
  if (record.category === 'exception-caught-at-tail' && /Connection reset/.test(record.exception_message ?? '')) {
    tags.push('connection-reset');
  }
  if (record.category === 'direct-memory-exhausted' && record.message_first_line.startsWith('Failed to initialize a channel')) {
    tags.push('channel-init-failed');
  }
  return tags;
}

function journaldLine(line, stripLeadingWhitespace) {
  let kept = line.replace(/[ \t\r]+$/, '');
  if (stripLeadingWhitespace) kept = kept.replace(/^[ \t\r]+/, '');
  return kept;
}

/** Splits one host's raw log into its records (using the program's manifest) and journald entries. */
function loadHost(spec) {
  const rawLog = readFileSync(join(workDir, `${spec.host}.linkerd.log`), 'utf8');
  const programManifest = JSON.parse(readFileSync(join(workDir, `${spec.host}.manifest.json`), 'utf8'));
  if (programManifest.host !== spec.host) fail(`${spec.host}: manifest is for ${programManifest.host}`);
  if (!rawLog.endsWith('\n')) fail(`${spec.host}: raw log does not end with a newline`);
  const rawLines = rawLog.slice(0, -1).split('\n');
  const rawTotal = programManifest.records.reduce((sum, r) => sum + r.raw_line_count, 0);
  if (rawTotal !== rawLines.length) fail(`${spec.host}: manifest covers ${rawTotal} lines, log has ${rawLines.length}`);

  const entries = [];
  const records = [];
  let cursor = 0;
  for (const record of programManifest.records) {
    const recordLines = rawLines.slice(cursor, cursor + record.raw_line_count);
    cursor += record.raw_line_count;
    if (recordLines[0] !== record.first_line) fail(`${spec.host} #${record.seq}: first line differs from the log`);
    const kept = recordLines.map((l) => journaldLine(l, spec.stripLeadingWhitespace)).filter((l) => l !== '');
    if (kept.length !== record.line_count) {
      fail(`${spec.host} #${record.seq}: program counted ${record.line_count} non-blank lines, journald keeps ${kept.length}`);
    }
    kept.forEach((message, index) => {
      // journald stamps each line on receipt: the record's own time plus a microsecond per line.
      entries.push({ host: spec.host, pid: programManifest.pid, seq: record.seq, realtimeUs: BigInt(record.time_us) + BigInt(index), message });
    });
    const numbers = record.category === 'direct-memory-exhausted'
      ? { requested_bytes: record.requested_bytes, used_bytes: record.used_bytes, max_bytes: record.max_bytes }
      : {};
    records.push({
      seq: record.seq,
      time: record.time,
      level: record.level,
      logger: record.logger,
      thread: record.thread,
      first_line: record.first_line,
      journal_first_line: kept[0],
      message_first_line: record.message_first_line,
      exception_class: record.exception_class,
      exception_message: record.exception_message,
      category: record.category,
      expected_tags: expectedTags(record),
      line_count: record.line_count,
      raw_line_count: record.raw_line_count,
      ...numbers,
    });
  }
  const categories = records.map((r) => r.category).filter((c) => c !== null);
  const expectedIncidents = {};
  for (const category of categories) expectedIncidents[category] = (expectedIncidents[category] ?? 0) + 1;
  return {
    spec,
    entries,
    summary: {
      host: spec.host,
      service: SERVICE,
      pid: programManifest.pid,
      layout: programManifest.layout,
      journald_strips_leading_whitespace: spec.stripLeadingWhitespace,
      netty_version: programManifest.netty_version,
      java_version: programManifest.java_version,
      seed: programManifest.seed,
      base_time: programManifest.base_time,
      raw_line_count: rawLines.length,
      journal_line_count: entries.length,
      expected_event_count: categories.length,
      expected_incidents: expectedIncidents,
      records,
    },
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n, width = 2) => String(n).padStart(width, '0');

/** journalctl -o short, rendered in UTC (the zone of the linkerd headers). */
function shortPrefix(realtimeUs, host, pid) {
  const date = new Date(Number(realtimeUs / 1000n));
  const stamp = `${MONTHS[date.getUTCMonth()]} ${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  return `${stamp} ${host} ${SERVICE}[${pid}]:`;
}

const hosts = HOSTS.map(loadHost);

// Strict line-by-line alternation between the hosts: the hardest case for a per-stream grouper.
const interleaved = [];
const longest = Math.max(...hosts.map((h) => h.entries.length));
for (let i = 0; i < longest; i++) {
  for (const h of hosts) {
    const entry = h.entries[i];
    if (entry) interleaved.push({ entry, spec: h.spec });
  }
}

const textLines = [];
const jsonLines = [];
const seqnumById = new Map();
for (const { entry, spec } of interleaved) {
  textLines.push(`${shortPrefix(entry.realtimeUs, entry.host, entry.pid)} ${entry.message}`);
  const bootId = hexId(`boot:${spec.host}`);
  const machineId = hexId(`machine:${spec.host}`);
  const seqnumId = hexId(`seqnum:${spec.host}`);
  const seqnum = (seqnumById.get(spec.host) ?? 0x4a10) + 1;
  seqnumById.set(spec.host, seqnum);
  const baseUs = BigInt(Date.parse(hosts.find((h) => h.spec === spec).summary.base_time)) * 1000n;
  const monotonicUs = spec.uptimeAtBaseUs + (entry.realtimeUs - baseUs);
  const xorHash = createHash('sha256').update(entry.message).digest('hex').slice(0, 16);
  // Field order and string-typed values as `journalctl -o json` prints them.
  jsonLines.push(JSON.stringify({
    __CURSOR: `s=${seqnumId};i=${seqnum.toString(16)};b=${bootId};m=${monotonicUs.toString(16)};t=${entry.realtimeUs.toString(16)};x=${xorHash}`,
    __REALTIME_TIMESTAMP: entry.realtimeUs.toString(),
    __MONOTONIC_TIMESTAMP: monotonicUs.toString(),
    _BOOT_ID: bootId,
    _TRANSPORT: 'stdout',
    PRIORITY: '6',
    SYSLOG_FACILITY: '3',
    SYSLOG_IDENTIFIER: SERVICE,
    _PID: entry.pid,
    _UID: '998',
    _GID: '998',
    _COMM: 'java',
    _EXE: '/usr/lib/jvm/java-17-openjdk-amd64/bin/java',
    _CMDLINE: '/usr/bin/java -Dio.netty.leakDetection.level=paranoid -cp netty-repro NettyFailures',
    _SYSTEMD_CGROUP: `/system.slice/${UNIT}`,
    _SYSTEMD_UNIT: UNIT,
    _SYSTEMD_SLICE: 'system.slice',
    _SYSTEMD_INVOCATION_ID: hexId(`invocation:${spec.host}`),
    _MACHINE_ID: machineId,
    _HOSTNAME: entry.host,
    _STREAM_ID: hexId(`stream:${spec.host}`),
    MESSAGE: entry.message,
  }));
}

for (const h of hosts) copyFileSync(join(workDir, `${h.spec.host}.linkerd.log`), join(outDir, `${h.spec.host}.linkerd.log`));
writeFileSync(join(outDir, 'two-hosts.journal.txt'), `${textLines.join('\n')}\n`);
writeFileSync(join(outDir, 'two-hosts.journal.json'), `${jsonLines.join('\n')}\n`);
const versions = readFileSync(join(workDir, 'versions.txt'), 'utf8').trim().split('\n');
const manifest = {
  generated_by: 'examples/netty-repro/run.sh',
  versions,
  files: {
    raw: hosts.map((h) => `${h.spec.host}.linkerd.log`),
    journal_text: 'two-hosts.journal.txt',
    journal_json: 'two-hosts.journal.json',
  },
  interleaving: 'strict line-by-line alternation edge-a, edge-b; each line keeps its own record time, so time order holds per host only',
  journal_line_count: interleaved.length,
  hosts: Object.fromEntries(hosts.map((h) => [h.spec.host, h.summary])),
};
writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`build-fixtures: ${interleaved.length} journal lines; ` +
  hosts.map((h) => `${h.spec.host}: ${h.summary.records.length} records, ${h.entries.length} lines`).join('; '));
