/** Types of bench/lib.js for the TypeScript tests. */
export const ROOT: string;
export const BIN: string;
export const SERVER_ENV: Record<string, string>;
export const SERVER_NODE_FLAGS: string[];

export function tempDir(name: string): { dir: string; remove(): void };

/** Peak and current RSS of a process in MiB, from /proc; undefined once it is gone. */
export function memoryOf(pid: number): { peakMiB: number; rssMiB: number } | undefined;

/** Polls a process's peak RSS every `intervalMs`; the function returned stops polling and gives the highest seen (MiB). */
export function watchPeak(pid: number, intervalMs?: number): () => number;

/** CPU seconds (user + system) of a process, or of one of its threads; NaN once it is gone. */
export function cpuSecondsOf(pid: number, thread?: number): number;

export interface ServeProcess {
  url: string;
  pid: number;
  /** Kills the server and removes its data folder. */
  stop(): Promise<void>;
}

/** Starts `leakwatch serve` with `args`; one that does not start leaves neither a process nor a folder. */
export function startServe(args?: string[]): Promise<ServeProcess>;

export function metric(url: string, name: string): Promise<number>;
export function sleep(ms: number): Promise<void>;
export function percentile(values: number[], p: number): number;
export function round(value: number, digits?: number): number;
