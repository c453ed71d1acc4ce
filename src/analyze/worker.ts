/**
 * A shard of `leakwatch analyze` on its own thread (analyze.ts starts it): compiles the rules the
 * main thread loaded and checked, reads every chunk from shared memory, groups and classifies its
 * own streams, and sends back each chunk's records formatted for the output.
 */
import { parentPort } from 'node:worker_threads';
import { compileValidatedRules } from '../rules/validated.js';
import type { FromWorker, ToWorker } from './analyze.js';
import type { OutputFormat } from './format.js';
import { AnalyzeShard } from './shard.js';
import { toRoundOutput, transferList } from './wire.js';

const port = parentPort;
if (port === null) throw new Error('analyze/worker.js runs as a worker thread');

let shard: AnalyzeShard | undefined;
let format: OutputFormat = 'ndjson';
let outputSlots: Buffer[] = [];

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  (port as NonNullable<typeof port>).postMessage(message, transfer);
}

port.on('message', (message: ToWorker) => {
  try {
    switch (message.type) {
      case 'init': {
        const { groupers, classifier } = compileValidatedRules(message.validatedFiles);
        shard = new AnalyzeShard(message.spec, groupers, classifier);
        format = message.format;
        outputSlots = message.outputSlots.map((slot) => Buffer.from(slot));
        return;
      }
      case 'file':
        shard?.beginFile(message.fallbackService);
        return;
      case 'chunk': {
        const active = shard as AnalyzeShard;
        // The main thread has merged the round that used this slot before it sent this one (analyze.ts).
        const slot = outputSlots.length > 0 ? outputSlots[message.round % outputSlots.length] : undefined;
        const output = toRoundOutput(active.processBytes(Buffer.from(message.buffer), message.length), format, slot);
        send({ type: 'round', round: message.round, output, lines: active.stats().lines }, transferList(output));
        return;
      }
      case 'finish': {
        const active = shard as AnalyzeShard;
        const output = toRoundOutput(active.finish(), format);
        send({ type: 'done', output, stats: active.stats() }, transferList(output));
        return;
      }
    }
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
});
