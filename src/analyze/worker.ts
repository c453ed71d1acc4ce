/**
 * A shard of `leakwatch analyze` on its own thread (analyze.ts starts it): compiles the rules the
 * main thread loaded and checked, reads every chunk from shared memory, groups and classifies its
 * own streams, and sends back each chunk's records formatted for the output.
 */
import { parentPort } from 'node:worker_threads';
import { compileValidatedRules } from '../rules/validated.js';
import type { FromWorker, ToWorker } from './analyze.js';
import { toWire } from './wire.js';
import { AnalyzeShard } from './shard.js';
import type { OutputFormat } from './format.js';

const port = parentPort;
if (port === null) throw new Error('analyze/worker.js runs as a worker thread');

let shard: AnalyzeShard | undefined;
let format: OutputFormat = 'ndjson';

function send(message: FromWorker): void {
  (port as NonNullable<typeof port>).postMessage(message);
}

port.on('message', (message: ToWorker) => {
  try {
    switch (message.type) {
      case 'init': {
        const { groupers, classifier } = compileValidatedRules(message.validatedFiles);
        shard = new AnalyzeShard(message.spec, groupers, classifier);
        format = message.format;
        return;
      }
      case 'file':
        shard?.beginFile(message.fallbackService);
        return;
      case 'chunk': {
        const active = shard as AnalyzeShard;
        const items = active.processText(Buffer.from(message.buffer, 0, message.length).toString('utf8'));
        send({ type: 'round', round: message.round, items: toWire(items, format), lines: active.stats().lines });
        return;
      }
      case 'finish': {
        const active = shard as AnalyzeShard;
        const items = active.finish();
        send({ type: 'done', items: toWire(items, format), stats: active.stats() });
        return;
      }
    }
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
});
