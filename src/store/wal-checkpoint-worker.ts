/**
 * The thread that checkpoints the store's write-ahead log (sqlite-store.ts, WalCheckpointThread):
 * a checkpoint copies the log's pages into the database and fsyncs both, tens of milliseconds
 * that SQLite would otherwise spend inside whichever commit crossed the threshold, on the event
 * loop. PASSIVE never waits for the writer, so ingest is not held either.
 */
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { lowerThisThreadsPriority } from '../thread-priority.js';

export interface WalCheckpointSettings {
  path: string;
  thresholdBytes: number;
  everyMs: number;
  sizeLimitBytes: number;
}

lowerThisThreadsPriority();
const port = parentPort;
if (port === null) throw new Error('wal-checkpoint-worker runs as a worker thread');
const settings = workerData as WalCheckpointSettings;
const db = new Database(settings.path);
db.pragma(`journal_size_limit = ${settings.sizeLimitBytes}`);
// This connection never checkpoints by itself: it writes nothing.
db.pragma('wal_autocheckpoint = 0');

function walBytes(): number {
  try {
    return statSync(`${settings.path}-wal`).size;
  } catch {
    return 0;
  }
}

const timer = setInterval(() => {
  if (walBytes() < settings.thresholdBytes) return;
  const [result] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  port.postMessage({ kind: 'checkpointed', frames: result?.checkpointed ?? 0 });
}, settings.everyMs);

port.on('message', (message: { kind: 'stop' }) => {
  if (message.kind !== 'stop') return;
  clearInterval(timer);
  db.close();
  port.close();
});
