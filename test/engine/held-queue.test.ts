/**
 * The reorder queue gives records back in source order, equal keys in arrival order, whatever
 * order they arrive in and however arrivals and departures interleave: the same order as a stable
 * sort of everything held, which is what grouping relies on.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeldQueue } from '../../src/engine/held-queue.js';
import { PositionList } from '../../src/engine/position-list.js';
import type { LogRecord } from '../../src/ingest/record.js';

/** The queue's journal positions as the grouper gathers them for a checkpoint. */
function journalPositionsOf(queue: HeldQueue): number[] {
  const list = new PositionList();
  queue.collectJournalPositions(list);
  return [...list.take()];
}

/**
 * Source order as the grouper needs it, written out plainly: the source clock, then the position
 * in the source when both records have one; a record without a source clock comes before nothing.
 */
function comesBefore(record: LogRecord, other: LogRecord): boolean {
  const a = record.sourceUs;
  const b = other.sourceUs;
  if (a === undefined || b === undefined) return false;
  if (a !== b) return a < b;
  return record.position !== undefined && other.position !== undefined && record.position < other.position;
}

function record(sourceUs: number, id: number): LogRecord {
  return { time: 0, host: 'h', service: 's', pid: '1', stream: 'h s 1', message: String(id), sourceUs };
}

type Step = { kind: 'insert'; key: number } | { kind: 'shift' };

describe('HeldQueue', () => {
  it('hands records back as a stable sort by source order would, under any interleaving', () => {
    const steps = fc.array(
      fc.oneof(
        // Few distinct keys: many ties, whose arrival order must hold.
        fc.record({ kind: fc.constant('insert' as const), key: fc.integer({ min: 0, max: 20 }) }),
        fc.record({ kind: fc.constant('shift' as const) }),
      ),
      { maxLength: 300 },
    );
    fc.assert(
      fc.property(steps, (plan: Step[]) => {
        const queue = new HeldQueue();
        let model: LogRecord[] = [];
        let id = 0;
        for (const step of plan) {
          if (step.kind === 'insert') {
            const added = record(step.key, id++);
            const wasFront = queue.insert(added, step.key);
            // Stable: after every held record whose key is not greater.
            let at = model.length;
            while (at > 0 && comesBefore(added, model[at - 1] as LogRecord)) at--;
            model = [...model.slice(0, at), added, ...model.slice(at)];
            expect(wasFront).toBe(at === 0);
          } else if (model.length > 0) {
            expect(queue.firstDue()).toBe(model[0]?.sourceUs);
            expect(queue.shift()).toEqual(model.shift());
          }
          expect(queue.size).toBe(model.length);
        }
        expect([...queue.values()].map((held) => held.message).sort()).toEqual(model.map((held) => held.message).sort());
        const rest: LogRecord[] = [];
        while (queue.size > 0) rest.push(queue.shift());
        expect(rest).toEqual(model);
        expect(queue.firstDue()).toBe(Number.POSITIVE_INFINITY);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps what the grouper reads of a record, and orders by position under one clock', () => {
    const held = fc.record({
      sourceUs: fc.integer({ min: 0, max: 5 }),
      position: fc.integer({ min: 0, max: 5 }),
      journalPos: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
      header: fc.option(fc.boolean(), { nil: undefined }),
      time: fc.integer({ min: 0, max: 2 ** 42 }),
    });
    const steps = fc.array(fc.oneof(held.map((fields) => ({ kind: 'insert' as const, fields })), fc.constant({ kind: 'shift' as const })), { maxLength: 200 });
    // A stream's records all carry a position in the source or none do (one shipper, one config):
    // under one clock, "some have one" would order nothing consistently.
    fc.assert(
      fc.property(steps, fc.boolean(), (plan, withPositions) => {
        const queue = new HeldQueue();
        let model: LogRecord[] = [];
        let id = 0;
        for (const step of plan) {
          if (step.kind === 'insert') {
            const added: LogRecord = { time: step.fields.time, host: 'h', service: 's', pid: '1', stream: 'h s 1', message: `line ${id++}`, sourceUs: step.fields.sourceUs };
            if (withPositions) added.position = step.fields.position;
            for (const key of ['journalPos', 'header'] as const) {
              if (step.fields[key] !== undefined) Object.assign(added, { [key]: step.fields[key] });
            }
            queue.insert(added, 0);
            let at = model.length;
            while (at > 0 && comesBefore(added, model[at - 1] as LogRecord)) at--;
            model = [...model.slice(0, at), added, ...model.slice(at)];
          } else if (model.length > 0) {
            expect(queue.shift()).toEqual(model.shift());
          }
        }
        const positions = journalPositionsOf(queue);
        expect(positions.sort((a, b) => a - b)).toEqual(model.flatMap((kept) => (kept.journalPos === undefined ? [] : [kept.journalPos])).sort((a, b) => a - b));
        const rest: LogRecord[] = [];
        while (queue.size > 0) rest.push(queue.shift());
        expect(rest).toEqual(model);
      }),
      { numRuns: 500 },
    );
  });

  it('holds a lone record as it came, and orders it with what follows it and what overtakes it', () => {
    // A quiet stream holds one record through its window; a second record, earlier or later in the
    // source, puts it into a run. Its due time, journal position and header flag come back with it.
    const queue = new HeldQueue();
    const lone: LogRecord = { ...record(50, 1), journalPos: 7, header: true };
    expect(queue.insert(lone, 1_000)).toBe(true);
    expect(queue.firstDue()).toBe(1_000);
    expect(queue.lastDue()).toBe(1_000);
    const positions = journalPositionsOf(queue);
    expect(positions).toEqual([7]);
    expect([...queue.values()]).toEqual([lone]);
    // An earlier record of the source overtakes it, a later one and a tie follow it.
    expect(queue.insert({ ...record(40, 2), journalPos: 8 }, 1_100)).toBe(true);
    queue.insert(record(60, 3), 1_200);
    queue.insert(record(50, 4), 1_300);
    expect(queue.firstDue()).toBe(1_100);
    const afterwards = journalPositionsOf(queue);
    expect(afterwards.sort((a, b) => a - b)).toEqual([7, 8]);
    const order: Array<[string, number | undefined, boolean | undefined]> = [];
    while (queue.size > 0) {
      const next = queue.shift();
      order.push([next.message, next.journalPos, next.header]);
    }
    expect(order).toEqual([
      ['2', 8, undefined],
      ['1', 7, true],
      ['4', undefined, undefined],
      ['3', undefined, undefined],
    ]);
    // Emptied, the next record is lone again.
    const again = record(70, 5);
    expect(queue.insert(again, 2_000)).toBe(true);
    expect(queue.shift()).toEqual(again);
    expect(queue.size).toBe(0);
    expect(queue.firstDue()).toBe(Number.POSITIVE_INFINITY);
  });

  it('keeps a record without a source clock in arrival order: nothing that comes after it is put before it', () => {
    // A stream that mixes records with and without the source's clock (a shipper that stamps only some).
    const queue = new HeldQueue();
    const stamped = (sourceUs: number, message: string): LogRecord => ({ time: 0, host: 'h', service: 's', pid: '1', stream: 'h s 1', message, sourceUs });
    queue.insert(stamped(5, 'a'), 0);
    queue.insert(stamped(3, 'b'), 0);
    queue.insert({ time: 0, host: 'h', service: 's', pid: '1', stream: 'h s 1', message: 'no clock' }, 0);
    queue.insert(stamped(1, 'c'), 0);
    const order: string[] = [];
    while (queue.size > 0) order.push(queue.shift().message);
    expect(order).toEqual(['b', 'a', 'no clock', 'c']);
  });

  it('merges batches that arrive out of order, more of them at once than it keeps runs for', () => {
    // A shipper's batches are each in order; concurrent requests and retries deliver them in any
    // order. Up to 20 batches in flight at once: past its few runs the queue falls back to its heap.
    const batch = fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 40 });
    // After each batch, whether the window passes for the front record.
    const steps = fc.array(fc.record({ keys: batch, shiftAfter: fc.boolean() }), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(steps, (plan) => {
        const queue = new HeldQueue();
        let model: LogRecord[] = [];
        const taken: LogRecord[] = [];
        const expected: LogRecord[] = [];
        let id = 0;
        for (const { keys, shiftAfter } of plan) {
          for (const key of [...keys].sort((a, b) => a - b)) {
            const added = record(key, id++);
            queue.insert(added, key);
            let at = model.length;
            while (at > 0 && comesBefore(added, model[at - 1] as LogRecord)) at--;
            model = [...model.slice(0, at), added, ...model.slice(at)];
          }
          if (shiftAfter) {
            taken.push(queue.shift());
            expected.push(model.shift() as LogRecord);
          }
        }
        while (queue.size > 0) taken.push(queue.shift());
        expect(taken).toEqual([...expected, ...model]);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps source order and the journal positions of what it holds across chunks of its runs, with departures in between', () => {
    // Two runs of 5,000 records each (the queue keeps them in chunks of 1,024), the second late:
    // every arrival of the newer run is followed by one of the older; 500 leave after every 700.
    const queue = new HeldQueue();
    const model: number[] = [];
    const taken: number[] = [];
    const expected: number[] = [];
    const take = (): void => {
      taken.push(queue.shift().sourceUs as number);
      expected.push(model.shift() as number);
    };
    for (let index = 0; index < 5000; index++) {
      for (const key of [10_000 + index, index]) {
        queue.insert({ ...record(key, key), journalPos: key * 3 }, 0);
        let at = model.length;
        while (at > 0 && (model[at - 1] as number) > key) at--;
        model.splice(at, 0, key);
      }
      if (index % 700 === 699) for (let count = 0; count < 500; count++) take();
    }
    const positions = journalPositionsOf(queue);
    expect(positions.sort((a, b) => a - b)).toEqual(model.map((key) => key * 3));
    expect([...queue.values()].map((held) => held.sourceUs).sort((a, b) => (a as number) - (b as number))).toEqual(model);
    while (queue.size > 0) take();
    expect(taken).toEqual(expected);
    expect(taken).toHaveLength(10_000);
  });

  it('fills chunks that other queues have given back with their own records only', () => {
    const fill = (queue: HeldQueue, name: string, from: number, count: number): string[] => {
      const messages: string[] = [];
      for (let key = from; key < from + count; key++) {
        messages.push(`${name} ${key}`);
        queue.insert({ ...record(key, key), message: `${name} ${key}`, journalPos: key }, 0);
      }
      return messages;
    };
    // Three queues of three to four chunks each, drained one after the other: each fills the chunks
    // the one before gave back, and must see none of its records or journal positions.
    for (const name of ['first', 'second', 'third']) {
      const queue = new HeldQueue();
      const held = fill(queue, name, 0, 3000);
      for (let key = 0; key < 1500; key++) expect(queue.shift()).toMatchObject({ message: `${name} ${key}`, sourceUs: key, journalPos: key });
      held.splice(0, 1500);
      held.push(...fill(queue, name, 3000, 1200));
      expect([...queue.values()].map((record) => record.message)).toEqual(held);
      const positions = journalPositionsOf(queue);
      expect(positions).toEqual(Array.from({ length: 2700 }, (_, index) => 1500 + index));
      const taken: string[] = [];
      while (queue.size > 0) taken.push(queue.shift().message);
      expect(taken).toEqual(held);
    }
  });

  it('gives every message back as it came, from the chunks that keep them as bytes too: any characters, lone surrogates, lines longer than a chunk holds', () => {
    const message = fc.oneof(
      fc.string(),
      fc.string({ unit: 'grapheme' }),
      // Any UTF-16 code units: lone surrogates, which UTF-8 cannot carry.
      fc.string({ unit: fc.nat({ max: 0xffff }).map((code) => String.fromCharCode(code)) }),
      // Longer than a chunk's first message bytes (128 KiB) at three bytes a character.
      fc.constantFrom('x'.repeat(100_000), '\u2014'.repeat(90_000)),
    );
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 40 }), fc.nat({ max: 2500 }), (drawn, filler) => {
        // Filler first, so that the drawn ones land in the run's own chunk or in taken ones.
        const messages = [...Array.from({ length: filler }, (_, index) => `filler ${index}`), ...drawn];
        const queue = new HeldQueue();
        messages.forEach((text, index) => queue.insert({ ...record(index, index), message: text }, 0));
        expect([...queue.values()].map((held) => held.message)).toEqual(messages);
        const taken: string[] = [];
        while (queue.size > 0) taken.push(queue.shift().message);
        expect(taken).toEqual(messages);
      }),
      { numRuns: 60 },
    );
  });

  it('puts a late batch before the newer one that overtook it', () => {
    // Two racing shipper requests: the newer batch lands first (npm run bench measures the cost).
    const queue = new HeldQueue();
    for (let index = 50_000; index < 100_000; index++) queue.insert(record(index, index), 0);
    for (let index = 0; index < 50_000; index++) queue.insert(record(index, index), 0);
    const order: number[] = [];
    while (queue.size > 0) order.push(queue.shift().sourceUs as number);
    expect(order).toEqual(Array.from({ length: 100_000 }, (_, index) => index));
  });
});
