/**
 * The direct-memory record of the seed thread (linkerd 1.3.1 on journald, the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io, November 2017); the same
 * trace as linkerd/linkerd#1690), as journalctl printed it, with a host name put back (the forum
 * paste lost it); the frames lost their parentheses' contents there, and their tab to journald
 * (systemd < 228 strips it).
 */
export const SEED_OODM_RECORD = [
  'Nov 01 11:59:32 web-1 linkerd[5699]: WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel. Closing: [id: 0xda8ab2a4, L:/ - R:/]',
  'Nov 01 11:59:32 web-1 linkerd[5699]: io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
  'Nov 01 11:59:32 web-1 linkerd[5699]: at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(',
  'Nov 01 11:59:32 web-1 linkerd[5699]: at io.netty.util.internal.PlatformDependent.allocateDirectNoCleaner(',
].join('\n');

export const SEED_OODM_NUMBERS = { used_bytes: 1037041958, max_bytes: 1037959168, requested_bytes: 1048576 };
