/** The regex-checking thread: recheck lives here, and leaves with the thread when it goes idle. */
import { parentPort } from 'node:worker_threads';
import { recheckVerdict } from './recheck-verdict.js';
import { lowerThisThreadsPriority } from '../thread-priority.js';

lowerThisThreadsPriority();
const port = parentPort;
if (port === null) throw new Error('regex-safety-worker runs as a worker thread');
port.on('message', (task: { id: number; source: string; timeoutMs: number }) => {
  void recheckVerdict(task.source, task.timeoutMs).then((verdict) => port.postMessage({ id: task.id, verdict }));
});
