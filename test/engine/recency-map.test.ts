/**
 * RecencyMap replaces lru-cache's LRUCache in the grouper and the count windows: under any sequence
 * of get, peek and set it must hold the same entries, evict the same ones in the same order, and
 * iterate in the same order both ways, since the grouper's flush and sweep close groups in that order.
 */
import fc from 'fast-check';
import { LRUCache } from 'lru-cache';
import { describe, expect, it } from 'vitest';
import { RecencyMap, type RecencyLinks } from '../../src/engine/recency-map.js';

type Step = { op: 'get' | 'peek'; key: number } | { op: 'set'; key: number; value: number };

/** A value as the map keeps it: its key and its recency links on it. */
interface Item<K, T> extends RecencyLinks<Item<K, T>> {
  key: K;
  value: T;
}

function item<K, T>(key: K, value: T): Item<K, T> {
  return { key, value, lessRecent: undefined, moreRecent: undefined };
}

function recencyMap<K, T>(max: number, onEvict?: (value: Item<K, T>, key: K) => void): RecencyMap<K, Item<K, T>> {
  return new RecencyMap<K, Item<K, T>>({ max, keyOf: (value) => value.key, ...(onEvict ? { onEvict } : {}) });
}

describe('RecencyMap', () => {
  it('behaves as LRUCache under any sequence of get, peek and set (entries, evictions, both orders)', () => {
    const step = fc.oneof(
      fc.record({ op: fc.constantFrom('get' as const, 'peek' as const), key: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ op: fc.constant('set' as const), key: fc.integer({ min: 0, max: 12 }), value: fc.integer() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(step, { maxLength: 200 }), (max, steps: Step[]) => {
        const evictedByMap: Array<[number, number]> = [];
        const evictedByCache: Array<[number, number]> = [];
        const map = recencyMap<number, number>(max, (evicted, key) => evictedByMap.push([key, evicted.value]));
        const cache = new LRUCache<number, number>({
          max,
          dispose: (value, key, reason) => {
            if (reason === 'evict') evictedByCache.push([key, value]);
          },
        });
        for (const { op, key, ...rest } of steps) {
          if (op === 'set') {
            const { value } = rest as { value: number };
            map.set(key, item(key, value));
            cache.set(key, value);
          } else {
            expect(map[op](key)?.value).toBe(cache[op](key));
          }
          expect(map.size).toBe(cache.size);
        }
        expect(evictedByMap).toEqual(evictedByCache);
        expect(newestFirst(map)).toEqual([...cache.values()]);
        expect(oldestFirst(map)).toEqual([...cache.rvalues()]);
      }),
      { numRuns: 500 },
    );
  });

  it('lets the eviction callback read the map, the evicted entry still in it, before the new entry goes in', () => {
    const seen: Array<{ evicted: string | undefined; incoming: string | undefined; size: number }> = [];
    const map: RecencyMap<string, Item<string, string>> = recencyMap<string, string>(2, (_value, key) =>
      seen.push({ evicted: map.peek(key)?.value, incoming: map.peek('c')?.value, size: map.size }),
    );
    map.set('a', item('a', 'A')).set('b', item('b', 'B'));
    map.get('a');
    map.set('c', item('c', 'C'));
    expect(seen).toEqual([{ evicted: 'B', incoming: undefined, size: 2 }]);
    expect(newestFirst(map)).toEqual(['C', 'A']);
    expect(map.peek('b')).toBeUndefined();
  });

  it('stops a visit when it returns false, and lets it make the visited entry the most recent', () => {
    const map = recencyMap<string, string>(5);
    map.set('a', item('a', 'A')).set('b', item('b', 'B')).set('c', item('c', 'C'));
    const visited: string[] = [];
    map.forEachNewest(({ value }) => {
      visited.push(value);
      map.get(value.toLowerCase());
      return value !== 'B';
    });
    expect(visited).toEqual(['C', 'B']);
    expect(newestFirst(map)).toEqual(['B', 'C', 'A']);
    const fromOldest: string[] = [];
    map.forEachOldest(({ value }) => {
      fromOldest.push(value);
      return fromOldest.length < 2;
    });
    expect(fromOldest).toEqual(['A', 'C']);
  });

  it('refuses a bound below one entry', () => {
    expect(() => recencyMap(0)).toThrow(RangeError);
  });
});

function newestFirst<K, T>(map: RecencyMap<K, Item<K, T>>): T[] {
  const values: T[] = [];
  map.forEachNewest(({ value }) => void values.push(value));
  return values;
}

function oldestFirst<K, T>(map: RecencyMap<K, Item<K, T>>): T[] {
  const values: T[] = [];
  map.forEachOldest(({ value }) => void values.push(value));
  return values;
}
