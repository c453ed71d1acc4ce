import { describe, expect, it } from 'vitest';
import { PositionList } from '../../src/engine/position-list.js';

describe('PositionList', () => {
  it('gathers past its first room, hands each gathering over as its own array and starts empty again', () => {
    const list = new PositionList();
    const first = Array.from({ length: 5_000 }, (_, index) => index * 3 + 0.5);
    for (const position of first) list.push(position);
    const taken = list.take();
    expect([...taken]).toEqual(first);
    expect(list.length).toBe(0);

    // The next gathering reuses the room: the array taken before is not written over.
    list.push(7);
    list.push(9);
    expect([...list.take()]).toEqual([7, 9]);
    expect(taken[0]).toBe(0.5);
    expect(taken.length).toBe(5_000);
    expect([...list.take()]).toEqual([]);
  });

  it('gathers again at full size after a flood gave its room back', () => {
    const list = new PositionList();
    for (let position = 0; position < 100_000; position++) list.push(position);
    expect(list.take().length).toBe(100_000);
    for (let position = 0; position < 10; position++) list.push(position);
    expect([...list.take()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let position = 0; position < 3_000; position++) list.push(position * 2);
    const again = list.take();
    expect(again.length).toBe(3_000);
    expect(again[2_999]).toBe(5_998);
  });
});
