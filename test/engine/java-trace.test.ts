import { describe, expect, it } from 'vitest';
import { parseJavaTrace } from '../../src/engine/java-trace.js';
import { CHANNEL_INIT_SEED, LEAK_2292, OODM_JOURNALD_1690, RESET_5936, RESET_CANCEL_2247, TAIL_RESET_SEED, UNKNOWN_CHANNEL_2247 } from './fixtures.js';

describe('parseJavaTrace', () => {
  it('finds the exception after the header, with frames unindented (journald) or tab-indented', () => {
    expect(parseJavaTrace(OODM_JOURNALD_1690)).toEqual({
      exception: {
        class: 'io.netty.util.internal.OutOfDirectMemoryError',
        message: 'failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
      },
      causes: [],
    });
    expect(parseJavaTrace(UNKNOWN_CHANNEL_2247).exception?.class).toBe('com.twitter.finagle.UnknownChannelException');
    expect(parseJavaTrace(CHANNEL_INIT_SEED).exception?.class).toBe('io.netty.util.internal.OutOfDirectMemoryError');
  });

  it('reads a group without header from its first line', () => {
    expect(parseJavaTrace(RESET_5936).exception).toEqual({ class: 'java.io.IOException', message: 'Connection reset by peer' });
  });

  it('takes the exception from an uncaught-exception header', () => {
    expect(parseJavaTrace(['Exception in thread "main" java.lang.OutOfMemoryError: Java heap space']).exception).toEqual({
      class: 'java.lang.OutOfMemoryError',
      message: 'Java heap space',
    });
  });

  it('collects causes in order, nested class names and message-less exceptions included', () => {
    // Causes as printed by Throwable.printStackTrace (armeria#1722 / netty#3539 shapes: Errors$NativeIoException).
    const trace = parseJavaTrace([
      'java.lang.RuntimeException: io.netty.channel.unix.Errors$NativeIoException: syscall:read(..) failed: Connection reset by peer',
      '\tat io.zhudy.duic.web.config.WebConfig$1.accept(WebConfig.kt:57)',
      'Caused by: io.netty.channel.unix.Errors$NativeIoException: syscall:read(..) failed: Connection reset by peer',
      '\tat io.netty.channel.unix.FileDescriptor.readAddress(..)(Unknown Source)',
      '\t... 3 more',
      'Caused by: java.lang.NullPointerException',
    ]);
    expect(trace.exception?.class).toBe('java.lang.RuntimeException');
    expect(trace.exception?.message).toBe('io.netty.channel.unix.Errors$NativeIoException: syscall:read(..) failed: Connection reset by peer');
    expect(trace.causes).toEqual([
      { class: 'io.netty.channel.unix.Errors$NativeIoException', message: 'syscall:read(..) failed: Connection reset by peer' },
      { class: 'java.lang.NullPointerException', message: '' },
    ]);
  });

  it('finds no exception in bare toString lines, leak records or cut frames', () => {
    expect(parseJavaTrace(RESET_CANCEL_2247).exception).toBeNull();
    expect(parseJavaTrace(TAIL_RESET_SEED).exception).toBeNull();
    expect(parseJavaTrace(LEAK_2292).exception).toBeNull();
    expect(parseJavaTrace([]).exception).toBeNull();
  });
});
