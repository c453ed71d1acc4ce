/**
 * Real log texts from public reports. Each constant names its source; lines are verbatim except
 * where a comment says how they were cut.
 */

/** linkerd/linkerd#1690 (https://github.com/linkerd/linkerd/issues/1690): journald before systemd 228 stripped the frames' tabs. */
export const OODM_JOURNALD_1690 = [
  'W 1101 14:10:26.714 UTC THREAD42: Unhandled exception in connection with /10.49.154.23:42176, shutting down connection',
  'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
  'at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(PlatformDependent.java:618)',
];

/** the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io, November 2017), journald prefix removed; frames lost their parentheses there. */
export const CHANNEL_INIT_SEED = [
  'WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel. Closing: [id: 0xda8ab2a4, L:/ - R:/]',
  'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
  'at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(',
  'at io.netty.util.internal.PlatformDependent.allocateDirectNoCleaner(',
  'at io.netty.buffer.PoolArena$DirectArena.allocateDirect(',
  'at io.netty.buffer.PoolArena$DirectArena.newChunk(',
];

/** Same seed thread: the tail-of-pipeline warning with a bare `Connection reset by peer` and cut frames. */
export const TAIL_RESET_SEED = [
  'WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired, and it reached at the tail of the pipeline. It usually means the last handler in the pipeline did not handle the exception.',
  'Connection reset by peer',
  'at Method)',
  'at',
  'at io.netty.buffer.PooledUnsafeDirectByteBuf.setBytes(',
  'at io.netty.buffer.AbstractByteBuf.writeBytes(',
  'at$',
  'at io.netty.util.concurrent.SingleThreadEventExecutor$',
  'at com.twitter.finagle.util.BlockingTimeTrackingThreadFactory$$anon$',
];

/** linkerd/linkerd#2247 (https://github.com/linkerd/linkerd/issues/2247), comment of 2019-03-09; first frames only. */
export const UNKNOWN_CHANNEL_2247 = [
  'E 0308 17:33:07.456 PST THREAD22: [S L:/127.0.0.1:4142 R:/127.0.0.1:51345] dispatcher failed',
  'com.twitter.finagle.UnknownChannelException: failed to allocate 1024 byte(s) of direct memory (used: 134217390, max: 134217728) at remote address: /127.0.0.1:51345. Remote Info: Not Available',
  '\tat com.twitter.finagle.ChannelException$.apply(Exceptions.scala:271)',
  '\tat com.twitter.finagle.netty4.transport.ChannelTransport$$anon$2.exceptionCaught(ChannelTransport.scala:175)',
  '\tat io.netty.channel.AbstractChannelHandlerContext.invokeExceptionCaught(AbstractChannelHandlerContext.java:285)',
];

/** linkerd/linkerd#2247, issue description: a JUL warning whose throwable prints as a bare Scala toString. */
export const RESET_CANCEL_2247 = [
  'W 0308 12:05:12.528 PST THREAD22 TraceId:ce91690fb56eea4c: Exception propagated to the default monitor (upstream address: /127.0.0.1:61833, downstream address: /127.0.0.1:9999, label: $/inet/127.1/9999).',
  'Reset.Cancel',
];

/** linkerd/linkerd#1678 (https://github.com/linkerd/linkerd/issues/1678): untraced LEAK report, one line. */
export const LEAK_1678 = [
  "ERROR 1019 21:54:39.902 UTC finagle/netty4-7: LEAK: ByteBuf.release() was not called before it's garbage-collected. See http://netty.io/wiki/reference-counted-objects.html for more information.",
];

/**
 * linkerd/linkerd#2292 (https://github.com/linkerd/linkerd/issues/2292): a traced LEAK report. The
 * `#6:`, `Hint:` and `: 57 leak records ...` lines are quoted from the issue; the frames are from
 * the text; the report's own
 * header line is the one Netty 4.1.17+ prints (ResourceLeakDetector.java).
 */
export const LEAK_2292 = [
  "LEAK: ByteBuf.release() was not called before it's garbage-collected. See http://netty.io/wiki/reference-counted-objects.html for more information.",
  'Recent access records: ',
  '#6:',
  "\tHint: 'H2FrameCodec$ConnectionHandler#0' will handle the message from this point.",
  '\tio.netty.channel.nio.NioEventLoop.run(NioEventLoop.java:462)',
  '\tio.netty.util.concurrent.SingleThreadEventExecutor$5.run(SingleThreadEventExecutor.java:897)',
  '\tjava.base/java.lang.Thread.run(Thread.java:834)',
  'Created at:',
  '\tio.netty.buffer.PooledByteBufAllocator.newDirectBuffer(PooledByteBufAllocator.java:331)',
  '\tio.netty.buffer.AbstractByteBufAllocator.directBuffer(AbstractByteBufAllocator.java:185)',
  ': 57 leak records were discarded because the leak record count is targeted to 4. Use system property io.netty.leakDetection.targetRecords to increase the limit.',
];

/** netty/netty#5936 (https://github.com/netty/netty/issues/5936): JDK 8 NIO read reset, first frames. */
export const RESET_5936 = [
  'java.io.IOException: Connection reset by peer',
  '        at sun.nio.ch.FileDispatcherImpl.read0(Native Method)',
  '        at sun.nio.ch.SocketDispatcher.read(SocketDispatcher.java:39)',
  '        at sun.nio.ch.IOUtil.readIntoNativeBuffer(IOUtil.java:223)',
];

/** linkerd/linkerd#1971 (https://github.com/linkerd/linkerd/issues/1971): an ordinary INFO line. */
export const INFO_1971 = 'I 0406 15:09:51.270 UTC THREAD1: linkerd 1.3.6 (rev=...) built at 20180302-132344';
