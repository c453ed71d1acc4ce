import { availableParallelism } from 'node:os';

/** analyze's default number of shards: the cores there are, at most 4 (every shard reads every line). */
export function defaultThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}
