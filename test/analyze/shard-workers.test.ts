import { afterEach, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { startShardWorkersEarly, takeShardWorkers, threadsAsked } from '../../src/analyze/shard-workers.js';
import { defaultThreads } from '../../src/analyze/threads.js';

describe('threadsAsked: what the launcher starts before the command line is parsed', () => {
  it('reads --threads as the command line does, else the default', () => {
    expect(threadsAsked(['big.log'])).toBe(defaultThreads());
    expect(threadsAsked(['--threads', '3', 'big.log'])).toBe(3);
    expect(threadsAsked(['big.log', '--threads=2'])).toBe(2);
    expect(threadsAsked(['--format', 'ndjson', '--threads', '1', '--threads', '4'])).toBe(4);
    // After `--` everything is a file name.
    expect(threadsAsked(['--', '--threads', '3'])).toBe(defaultThreads());
  });

  it('starts nothing for a count the command line will refuse', () => {
    for (const value of ['0', '-1', 'two', '', '1.5']) expect(threadsAsked(['--threads', value]), value).toBeUndefined();
    expect(threadsAsked(['--threads'])).toBeUndefined();
  });
});

describe('takeShardWorkers', () => {
  let taken: Worker[] = [];
  afterEach(async () => {
    await Promise.all(taken.map((worker) => worker.terminate()));
    taken = [];
  });

  it('hands over the threads started early, ends the ones beyond the count, and starts the rest', async () => {
    startShardWorkersEarly(3);
    taken = takeShardWorkers(2);
    expect(new Set(taken.map((worker) => worker.threadId)).size).toBe(2);
    const early = taken.map((worker) => worker.threadId);
    // Nothing started early is left: the next run starts its own.
    const next = takeShardWorkers(2);
    taken.push(...next);
    expect(next.map((worker) => worker.threadId).some((id) => early.includes(id))).toBe(false);
    expect(Math.min(...next.map((worker) => worker.threadId))).toBeGreaterThan(Math.max(...early) + 1);
  });
});
