/** Types of bench/scale-servers.js for the TypeScript tests. */
export function freePort(): Promise<number>;

export interface PostgresServer {
  /** postgresql://… of a database made for the test. */
  url: string;
  port: number;
  /** Stops the server; `immediate` as a crash would (no shutdown checkpoint). */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  /** The server's processes (the postmaster and its backends), for their CPU time. */
  processIds(): number[];
  /** Another database on the same server (its URL: `url` with the name in place of `leakwatch`). */
  createDatabase(name: string): void;
  /** Stops it for good and removes its folder. */
  remove(): void;
}

export function startPostgres(): Promise<PostgresServer>;

export interface NatsServer {
  url: string;
  port: number;
  /** The running server's process id. */
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM: JetStream's files are kept for the next start). */
  stop(): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
}

export function startNats(): Promise<NatsServer>;
