import { setFlagsFromString } from 'node:v8';

/**
 * After a full collection V8 lets the heap grow by a factor it picks, up to 4 where the heap limit
 * is 2 GB or more (any machine with 8 GB of memory), before the next one: under a steady flood the
 * server's old generation went from ~45 to ~150 MB, mostly garbage, between two full collections,
 * and its RSS with it. V8 reads the percent each time a collection sets the next limit, so setting
 * it at start-up applies from the first collection on, in every thread. 0 leaves V8's own factor.
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}
