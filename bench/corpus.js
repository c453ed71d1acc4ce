// Generates a deterministic corpus of linkerd 1.x output for the benchmarks: several processes on
// several hosts interleaved line by line, a share of the lines inside traces. Trace shapes are
// copied from real public reports (cited per template); ordinary lines follow linkerd's JUL layout
// (linkerd admin TimeZoneLogFormat.scala). As `journalctl -o short` text
// (`Nov 01 11:59:32 host-3 linkerd[5699]: <line>`) or `journalctl -o json` entries (with journald's
// realtime clock and cursor), the shapes `leakwatch analyze` and the shippers read.
//
//   node bench/corpus.js --lines 1000000 [--processes 8] [--hosts 4] [--trace-share 0.33]
//                        [--seed 1690] [--format text|json] --out /tmp/corpus.log
import { createWriteStream } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Deterministic PRNG (mulberry32) so every run measures the same corpus; the tests' synthetic series use it too. */
export function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n) => String(n).padStart(2, '0');
const three = (n) => String(n).padStart(3, '0');

function julTime(date) {
  return `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}.${three(date.getUTCMilliseconds())} UTC`;
}

function journaldPrefix(date, host, service, pid) {
  return `${MONTHS[date.getUTCMonth()]} ${two(date.getUTCDate())} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} ${host} ${service}[${pid}]: `;
}

// linkerd/linkerd#1690 (journald before systemd 228: frames without their tab) and #2132 (frames with line numbers).
const OODM_FRAMES = [
  'at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(PlatformDependent.java:618)',
  'at io.netty.util.internal.PlatformDependent.allocateDirectNoCleaner(PlatformDependent.java:594)',
  'at io.netty.buffer.PoolArena$DirectArena.allocateDirect(PoolArena.java:764)',
  'at io.netty.buffer.PoolArena$DirectArena.newChunk(PoolArena.java:740)',
  'at io.netty.buffer.PoolArena.allocateNormal(PoolArena.java:244)',
  'at io.netty.buffer.PoolArena.allocate(PoolArena.java:226)',
  'at io.netty.buffer.PoolArena.allocate(PoolArena.java:146)',
  'at io.netty.buffer.PooledByteBufAllocator.newDirectBuffer(PooledByteBufAllocator.java:324)',
  'at io.netty.buffer.AbstractByteBufAllocator.directBuffer(AbstractByteBufAllocator.java:181)',
];

// netty/netty#5936 and czp3009/bilibili-lottery-listener#7 (JDK 8 NIO read reset under Netty 4.1).
const RESET_FRAMES = [
  '\tat sun.nio.ch.FileDispatcherImpl.read0(Native Method)',
  '\tat sun.nio.ch.SocketDispatcher.read(SocketDispatcher.java:39)',
  '\tat sun.nio.ch.IOUtil.readIntoNativeBuffer(IOUtil.java:223)',
  '\tat sun.nio.ch.IOUtil.read(IOUtil.java:192)',
  '\tat sun.nio.ch.SocketChannelImpl.read(SocketChannelImpl.java:380)',
  '\tat io.netty.buffer.PooledUnsafeDirectByteBuf.setBytes(PooledUnsafeDirectByteBuf.java:288)',
  '\tat io.netty.buffer.AbstractByteBuf.writeBytes(AbstractByteBuf.java:1108)',
  '\tat io.netty.channel.socket.nio.NioSocketChannel.doReadBytes(NioSocketChannel.java:345)',
  '\tat io.netty.channel.nio.AbstractNioByteChannel$NioByteUnsafe.read(AbstractNioByteChannel.java:148)',
  '\tat io.netty.channel.nio.NioEventLoop.processSelectedKey(NioEventLoop.java:647)',
];

// linkerd/linkerd#2292 (traced LEAK report; record lines are tab-indented frames without `at`).
const LEAK_RECORDS = [
  'Recent access records: ',
  '#6:',
  "\tHint: 'H2FrameCodec$ConnectionHandler#0' will handle the message from this point.",
  '\tio.netty.channel.nio.NioEventLoop.run(NioEventLoop.java:462)',
  '\tio.netty.util.concurrent.SingleThreadEventExecutor$5.run(SingleThreadEventExecutor.java:897)',
  '\tjava.base/java.lang.Thread.run(Thread.java:834)',
  'Created at:',
  '\tio.netty.buffer.PooledByteBufAllocator.newDirectBuffer(PooledByteBufAllocator.java:331)',
  '\tio.netty.buffer.AbstractByteBufAllocator.directBuffer(AbstractByteBufAllocator.java:185)',
  '\tio.netty.channel.nio.AbstractNioByteChannel$NioByteUnsafe.read(AbstractNioByteChannel.java:147)',
  ': 57 leak records were discarded because the leak record count is targeted to 4. Use system property io.netty.leakDetection.targetRecords to increase the limit.',
];

// linkerd/linkerd#2247 (dispatcher failure wrapping a direct-memory allocation failure).
const CHANNEL_FRAMES = [
  '\tat com.twitter.finagle.ChannelException$.apply(Exceptions.scala:271)',
  '\tat com.twitter.finagle.netty4.transport.ChannelTransport$$anon$2.exceptionCaught(ChannelTransport.scala:175)',
  '\tat io.netty.channel.AbstractChannelHandlerContext.invokeExceptionCaught(AbstractChannelHandlerContext.java:285)',
  '\tat io.netty.channel.AbstractChannelHandlerContext.invokeExceptionCaught(AbstractChannelHandlerContext.java:264)',
  '\tat io.netty.channel.AbstractChannelHandlerContext.fireExceptionCaught(AbstractChannelHandlerContext.java:256)',
  '\tat io.netty.channel.ChannelInboundHandlerAdapter.exceptionCaught(ChannelInboundHandlerAdapter.java:131)',
];

const TRACES = [
  (time, thread, random) => {
    const max = 1037959168;
    const used = max - Math.floor(random() * 2_000_000);
    return [
      `W ${time} THREAD${thread}: Unhandled exception in connection with /10.49.154.${thread % 250}:42176, shutting down connection`,
      `io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: ${used}, max: ${max})`,
      ...OODM_FRAMES,
    ];
  },
  (time, thread) => [
    `WARN ${time} finagle/netty4-${thread % 16}: An exceptionCaught() event was fired, and it reached at the tail of the pipeline. It usually means the last handler in the pipeline did not handle the exception.`,
    'java.io.IOException: Connection reset by peer',
    ...RESET_FRAMES,
  ],
  (time, thread) => [
    `ERROR ${time} finagle/netty4-${thread % 16}: LEAK: ByteBuf.release() was not called before it's garbage-collected. See http://netty.io/wiki/reference-counted-objects.html for more information.`,
    ...LEAK_RECORDS,
  ],
  (time, thread) => [
    `E ${time} THREAD${thread}: [S L:/127.0.0.1:4142 R:/127.0.0.1:51345] dispatcher failed`,
    'com.twitter.finagle.UnknownChannelException: failed to allocate 1024 byte(s) of direct memory (used: 134217390, max: 134217728) at remote address: /127.0.0.1:51345. Remote Info: Not Available',
    ...CHANNEL_FRAMES,
  ],
];

const ORDINARY = [
  (time, thread) => `I ${time} THREAD${thread}: Reaping /svc/users`,
  (time, thread) => `I ${time} THREAD${thread}: Finagle version 17.10.0 (rev=1a8d4ae6d0b5e3be5c4ad0c82e3b1f2b93e1f2a6) built at 20171011-141433`,
  (time, thread) => `W ${time} THREAD${thread}: Failed to resolve /#/io.l5d.consul/dc1/web: NoBrokersAvailableException`,
  (time, thread) => `I ${time} THREAD${thread} TraceId:ce91690fb56eea4c: [S L:/10.0.0.${thread % 250}:4140 R:/10.0.0.9:51345] request completed in 12 ms`,
  (time, thread) => `INFO ${time} finagle/netty4-${thread % 16}: channel active [id: 0xda8ab2a4, L:/10.0.0.1:4140 - R:/10.0.0.9:52311]`,
];

/**
 * Yields `{ host, service, pid, line, time, inTrace }` for `lines` lines: `processes` processes on `hosts`
 * hosts, each writing its own sequence, interleaved one line at a time.
 */
export function* generateCorpus({ lines = 1_000_000, processes = 8, hosts = 4, traceShare = 1 / 3, seed = 1690 } = {}) {
  const random = prng(seed);
  const start = Date.UTC(2017, 10, 1, 11, 59, 32);
  const procs = Array.from({ length: processes }, (_, index) => ({
    host: `host-${index % hosts}`,
    service: index < hosts ? 'linkerd' : 'namerd',
    pid: String(5699 + index * 17),
    pending: [],
    pendingIsTrace: false,
  }));
  let traceLines = 0;
  for (let produced = 0; produced < lines; produced++) {
    const proc = procs[produced % processes];
    const date = new Date(start + Math.floor(produced / 40));
    if (proc.pending.length === 0) {
      const thread = 1 + Math.floor(random() * 400);
      const time = julTime(date);
      if (traceLines < traceShare * produced) {
        const trace = TRACES[Math.floor(random() * TRACES.length)](time, thread, random);
        traceLines += trace.length;
        proc.pending = trace.reverse();
        proc.pendingIsTrace = true;
      } else {
        proc.pending = [ORDINARY[Math.floor(random() * ORDINARY.length)](time, thread)];
        proc.pendingIsTrace = false;
      }
    }
    yield { host: proc.host, service: proc.service, pid: proc.pid, line: proc.pending.pop(), time: date.getTime(), inTrace: proc.pendingIsTrace };
  }
}

/**
 * The entry as `journalctl -o json` writes it. journald's realtime is µs and strictly increasing:
 * the corpus advances 1 ms every 40 lines, so `index` spreads the lines of one millisecond.
 */
export function journalEntry(entry, index) {
  const realtime = entry.time * 1000 + (index % 40) * 25;
  return {
    __CURSOR: `s=0f3a1c;i=${(0x10000 + index).toString(16)};b=b00f;m=0;t=${realtime.toString(16)};x=1`,
    __REALTIME_TIMESTAMP: String(realtime),
    _HOSTNAME: entry.host,
    SYSLOG_IDENTIFIER: entry.service,
    _PID: entry.pid,
    _TRANSPORT: 'stdout',
    MESSAGE: entry.line.trimEnd(),
  };
}

export function journaldLine(entry) {
  // journald strips trailing whitespace (https://github.com/systemd/systemd/pull/1460).
  return journaldPrefix(new Date(entry.time), entry.host, entry.service, entry.pid) + entry.line.trimEnd();
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const index = args.indexOf(name);
    return index >= 0 && args[index + 1] !== undefined ? args[index + 1] : fallback;
  };
  const lines = Number(option('--lines', '1000000'));
  if (!Number.isInteger(lines) || lines < 1) throw new Error(`--lines must be a positive integer, got ${option('--lines', '')}`);
  const format = option('--format', 'text');
  if (format !== 'text' && format !== 'json') throw new Error(`--format must be text or json, got ${format}`);
  const corpus = generateCorpus({
    lines,
    processes: Number(option('--processes', '8')),
    hosts: Number(option('--hosts', '4')),
    traceShare: Number(option('--trace-share', String(1 / 3))),
    seed: Number(option('--seed', '1690')),
  });
  const out = option('--out', '-');
  const stream = out === '-' ? process.stdout : createWriteStream(out);
  let chunk = '';
  let index = 0;
  for (const entry of corpus) {
    chunk += (format === 'json' ? JSON.stringify(journalEntry(entry, index)) : journaldLine(entry)) + '\n';
    index++;
    if (chunk.length > 1 << 20) {
      if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
      chunk = '';
    }
  }
  stream.write(chunk);
  if (stream !== process.stdout) await new Promise((resolve) => stream.end(resolve));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
