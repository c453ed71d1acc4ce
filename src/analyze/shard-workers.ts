/**
 * analyze's shard threads (worker.ts), started as early as the process can: a thread takes ~0.17 s
 * to boot and load its modules on a 2-core machine, and when the command module started it, the
 * main thread had loaded the rules and cut the first chunk ~0.17 s before the thread could take it.
 * The launcher (bin/leakwatch.js) therefore starts them as soon as it sees `analyze`, before the
 * command line is parsed, and the run takes them (takeShardWorkers).
 */
import { Worker } from 'node:worker_threads';
import { defaultThreads } from './threads.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);
/**
 * A shard's thread: most of what it allocates dies within a chunk; its old generation holds open
 * groups and rules. With a young generation of 4 MiB, about one run in three (5 of 16 on the
 * bench's 1M lines) fell into promoting what dies a little later: 25 full collections instead of
 * none, 0.4-0.6 s longer and up to 100 MiB of peak RSS instead of 85-89. At 8 MiB no run did in
 * 16 (88-92 MiB, median 1.57 s against 1.74).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 };

interface EarlyWorker {
  worker: Worker;
  failed: boolean;
}

const early: EarlyWorker[] = [];
/** More than this many asked for are started when the run takes them: a mistyped count must not start hundreds of threads before it is checked. */
const MAX_EARLY = 8;

export function startShardWorker(): Worker {
  return new Worker(WORKER_URL, { resourceLimits: WORKER_LIMITS });
}

/**
 * Starts `count` shard threads for a run that has not been parsed yet. They do not keep the
 * process alive (a run that never comes, after `--help` or a bad option, must not wait for them),
 * and a thread that fails before a run takes it is replaced then, not reported twice.
 */
export function startShardWorkersEarly(count: number): void {
  for (let index = 0; index < Math.min(count, MAX_EARLY); index++) {
    const entry: EarlyWorker = { worker: startShardWorker(), failed: false };
    entry.worker.unref();
    entry.worker.once('error', () => (entry.failed = true));
    entry.worker.once('exit', () => (entry.failed = true));
    early.push(entry);
  }
}

/**
 * `count` shard threads for a run: those started early first, new ones for the rest. Early ones
 * beyond `count` are ended. Whoever takes them terminates those a run did not use.
 */
export function takeShardWorkers(count: number): Worker[] {
  const taken: Worker[] = [];
  for (const entry of early.splice(0)) {
    if (entry.failed || taken.length >= count) {
      void entry.worker.terminate();
      continue;
    }
    entry.worker.ref();
    taken.push(entry.worker);
  }
  while (taken.length < count) taken.push(startShardWorker());
  return taken;
}

/**
 * The threads `analyze` will ask for, read from its arguments as the command line will parse them
 * (`--threads N`, `--threads=N`), else the default; undefined when the value is not one the command
 * line accepts (it reports that itself).
 */
export function threadsAsked(args: readonly string[]): number | undefined {
  let value: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    if (arg === '--') break;
    if (arg === '--threads') value = args[++index] ?? '';
    else if (arg.startsWith('--threads=')) value = arg.slice('--threads='.length);
  }
  if (value === undefined) return defaultThreads();
  return /^[1-9]\d{0,2}$/.test(value) ? Number(value) : undefined;
}
