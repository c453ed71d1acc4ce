/**
 * A shard of `leakwatch analyze` on its own thread (analyze.ts starts it): compiles the rules the
 * main thread loaded and checked, reads every chunk from shared memory, groups and classifies its
 * own streams, and sends back each chunk's records formatted for the output.
 */
import { parentPort } from 'node:worker_threads';
import { compileValidatedRules } from '../rules/validated.js';
import type { FromWorker, ToWorker } from './analyze.js';
import { AnalyzeShard } from './shard.js';
import { RoundWriter } from './wire.js';

const port = parentPort;
if (port === null) throw new Error('analyze/worker.js runs as a worker thread');

let shard: AnalyzeShard | undefined;
let writer = new RoundWriter('ndjson');
let outputSlots: Buffer[] = [];

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  (port as NonNullable<typeof port>).postMessage(message, transfer);
}

port.on('message', (message: ToWorker) => {
  try {
    switch (message.type) {
      case 'init': {
        const { groupers, classifier } = compileValidatedRules(message.validatedFiles);
        writer = new RoundWriter(message.format);
        shard = new AnalyzeShard(message.spec, groupers, classifier, writer);
        outputSlots = message.outputSlots.map((slot) => Buffer.from(slot));
        return;
      }
      case 'file':
        shard?.beginFile(message.fallbackService);
        return;
      case 'chunk': {
        const active = shard as AnalyzeShard;
        // The main thread has merged the round that used this slot before it sent this one (analyze.ts).
        writer.begin(outputSlots.length > 0 ? outputSlots[message.round % outputSlots.length] : undefined);
        const { lines } = message;
        active.processLines(Buffer.from(message.buffer), lines, message.firstLine, message.ascii, message.chunkLines);
        const { output, transfer } = writer.end();
        // The line arrays go back to be filled again (Router.reuse): nothing here keeps them.
        const spent = { ranges: lines.ranges, times: lines.times };
        send({ type: 'round', round: message.round, output, spent }, [...transfer, lines.ranges.buffer as ArrayBuffer, lines.times.buffer as ArrayBuffer]);
        return;
      }
      case 'finish': {
        const active = shard as AnalyzeShard;
        // The slots may still hold rounds not merged yet: the last texts go in a buffer of their own.
        writer.begin(undefined);
        active.finish();
        const { output, transfer } = writer.end();
        send({ type: 'done', output, stats: active.stats() }, transfer);
        return;
      }
    }
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
});
