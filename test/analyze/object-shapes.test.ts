/**
 * What analyze's hot loops are handed each chunk keeps one shape (V8 map) whatever path made it.
 * A chunk's line arrays made as a spread of the arrays a shard gave back, against a literal for
 * fresh ones, had V8 throw out the router's compiled loop (routePiece, push) and compile it again
 * four times early in every run; an optional `bytes` key made two shapes of a round's output for
 * the merge. Checked in child processes on the built modules, with V8's own tracing and natives.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIST = fileURLToPath(new URL('../../dist/analyze/', import.meta.url));

function runModule(flags: string[], body: string): string {
  return execFileSync(process.execPath, [...flags, '--input-type=module', '-e', body, DIST], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

describe('shapes of the objects analyze passes each chunk', () => {
  it('the router, fed line arrays given back as a shard’s worker gives them, is compiled once and never thrown out', () => {
    const trace = runModule(
      ['--trace-opt', '--trace-deopt'],
      `
      const { Router } = await import(process.argv[1] + 'router.js');
      const line = (i) => 'Nov 01 11:59:' + String(i % 60).padStart(2, '0') + ' host-' + (i % 4) + ' linkerd[' + (100 + (i % 8)) + ']: I 1101 11:59:00.000 UTC THREAD1: line ' + i + '\\n';
      const chunk = Buffer.from(Array.from({ length: 4000 }, (_, i) => line(i)).join(''));
      const router = new Router(1, Date.UTC(2025, 10, 1));
      const pending = [];
      for (let round = 0; round < 300; round++) {
        pending.push(router.route(chunk, chunk.length).shards);
        // Given back two chunks later, cloned as postMessage clones them.
        if (pending.length > 2) for (const lines of pending.shift()) {
          const spent = structuredClone({ ranges: lines.ranges, times: lines.times });
          router.reuse(spent.ranges, spent.times);
        }
      }
    `,
    );
    // The check means something only if V8 optimised the loop at all.
    expect(trace).toMatch(/completed optimizing \S+ <JSFunction routePiece /);
    const thrownOut = trace.split('\n').filter((line) => line.startsWith('[bailout') && /<JSFunction (routePiece|push) /.test(line));
    expect(thrownOut).toEqual([]);
  });

  it('a round’s output: texts in the shared slot or in a buffer of its own, one shape once cloned', () => {
    const sameMap = runModule(
      ['--allow-natives-syntax'],
      `
      const { RoundWriter } = await import(process.argv[1] + 'wire.js');
      const writer = new RoundWriter('ndjson');
      writer.begin(Buffer.alloc(1024));
      const inSlot = writer.end().output;
      writer.begin(undefined);
      // ndjson is the record as JSON: a stand-in record is enough to put a text in the writer's own buffer.
      writer.record(7, { category: 'netty-direct-memory-exhausted', message: 'io.netty.util.internal.OutOfDirectMemoryError' });
      const ownBuffer = writer.end().output;
      if (ownBuffer.bytes === undefined || inSlot.bytes !== undefined) throw new Error('the two rounds should differ in where their texts are');
      // The main thread sees them as postMessage clones them.
      console.log(JSON.stringify(%HaveSameMap(structuredClone(inSlot), structuredClone(ownBuffer))));
    `,
    );
    expect(JSON.parse(sameMap)).toBe(true);
  });
});
