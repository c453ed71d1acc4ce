/** Types of bench/corpus.js for the TypeScript tests that build delivery scenarios from it. */
export interface CorpusEntry {
  host: string;
  service: string;
  pid: string;
  line: string;
  /** ms since the epoch; advances by 1 ms every 40 lines. */
  time: number;
  inTrace: boolean;
}

export function generateCorpus(options?: { lines?: number; processes?: number; hosts?: number; traceShare?: number; seed?: number }): Generator<CorpusEntry>;

export function journaldLine(entry: CorpusEntry): string;

/** The entry as `journalctl -o json` writes it (all values strings), `index` its place in the corpus. */
export function journalEntry(entry: CorpusEntry, index: number): Record<string, string>;

/** A deterministic generator of numbers in [0, 1) (mulberry32). */
export function prng(seed: number): () => number;
