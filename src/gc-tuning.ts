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

/**
 * Turns off V8's allocation-site pretenuring: once most objects made at one place in the code
 * outlive a young collection, V8 makes the rest there in the old generation. At full ingest rate
 * (a young collection every ~25 ms on the main thread) it judged the places that make events,
 * their texts and their ids long-lived, though 95 % of events are stored within 5 ms and let go:
 * made old, they died there, and each full collection had to find them (~50 MB of such objects in
 * one 1.5M-line pass, a third of all that left the young generation). The decision is taken and
 * read while the program runs, so turning it off at start-up, before any site is judged, applies
 * to every thread.
 */
export function stopPretenuring(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
