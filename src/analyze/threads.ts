import { availableParallelism } from 'node:os';

/**
 * analyze's default number of shard threads: one core is the main thread's (it reads, routes each
 * line to its shard and writes), the others group and classify; at least one, at most 4.
 */
export function defaultThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}
