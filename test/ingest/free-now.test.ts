import { describe, expect, it } from 'vitest';
import { freeChunkNow } from '../../src/ingest/free-now.js';

describe('freeChunkNow', () => {
  it('frees a chunk that is its whole buffer, as Node hands each HTTP body chunk', () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    freeChunkNow(chunk);
    expect(chunk.buffer.byteLength).toBe(0);
    expect(chunk.length).toBe(0);
  });

  it('leaves a chunk that is part of a larger buffer, and the rest of that buffer, as they were', () => {
    const whole = Buffer.from('0123456789abcdef'.repeat(4096));
    const part = whole.subarray(0, 1024);
    freeChunkNow(part);
    expect(part.toString('latin1', 0, 16)).toBe('0123456789abcdef');
    expect(whole.length).toBe(65_536);
    const atOffset = whole.subarray(16);
    freeChunkNow(atOffset);
    expect(whole.toString('latin1', 65_520)).toBe('0123456789abcdef');
  });

  it('leaves a buffer of Node\'s pool to the collector, without an error', () => {
    const pooled = Buffer.from('pooled');
    expect(() => freeChunkNow(pooled)).not.toThrow();
    expect(pooled.toString()).toBe('pooled');
  });
});
