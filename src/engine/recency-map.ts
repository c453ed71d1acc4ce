/**
 * A Map bounded to `max` entries that forgets the least recently used first: the part of
 * lru-cache's LRUCache the grouper and the count windows use (get, peek, set, size, visiting the values
 * from the most or the least recent, a callback on eviction before the new entry goes
 * in). Unlike LRUCache it allocates nothing per entry beyond the Map's slot, and nothing up front:
 * each value carries its own place in the recency order (RecencyLinks), where LRUCache filled two
 * arrays of `max` slots when it was made (1.6 MB for the grouper's 100,000 streams, whatever the
 * number of streams seen) and a list entry of its own per key cost 56 bytes more a stream.
 */

/** What a value carries for the map: its neighbours in the recency order, set by the map only. */
export interface RecencyLinks<V> {
  /** Toward the least recently used end; undefined at that end, or when in no map. */
  lessRecent: V | undefined;
  /** Toward the most recently used end; undefined at that end, or when in no map. */
  moreRecent: V | undefined;
}

export interface RecencyMapOptions<K, V> {
  max: number;
  /** The key a value was set under (a value is in one map, under one key, at a time). */
  keyOf: (value: V) => K;
  /** Told of an entry pushed out to make room, before the entry that needed it is added. */
  onEvict?: (value: V, key: K) => void;
}

export class RecencyMap<K, V extends RecencyLinks<V>> {
  private readonly entries = new Map<K, V>();
  private leastRecent: V | undefined;
  private mostRecent: V | undefined;
  private readonly max: number;
  private readonly keyOf: (value: V) => K;
  private readonly onEvict: ((value: V, key: K) => void) | undefined;

  constructor(options: RecencyMapOptions<K, V>) {
    if (!(Number.isInteger(options.max) && options.max >= 1)) throw new RangeError(`a RecencyMap holds at least one entry (max ${options.max})`);
    this.max = options.max;
    this.keyOf = options.keyOf;
    this.onEvict = options.onEvict;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) this.moveToMostRecent(value);
    return value;
  }

  /** The value, its recency unchanged. */
  peek(key: K): V | undefined {
    return this.entries.get(key);
  }

  /**
   * Sets the value, now the most recently used; a new key in a full map first evicts the least
   * recently used. A value set over another under the same key takes its place.
   */
  set(key: K, value: V): this {
    const existing = this.entries.get(key);
    if (existing === value) {
      this.moveToMostRecent(value);
      return this;
    }
    if (existing !== undefined) {
      this.unlink(existing);
    } else if (this.entries.size >= this.max && this.leastRecent !== undefined) {
      const evicted = this.leastRecent;
      const evictedKey = this.keyOf(evicted);
      this.onEvict?.(evicted, evictedKey);
      // The callback may have touched the map: unlink the entry wherever it is now, if still there.
      if (this.entries.get(evictedKey) === evicted) {
        this.unlink(evicted);
        this.entries.delete(evictedKey);
      }
    }
    this.linkAsMostRecent(value);
    this.entries.set(key, value);
    return this;
  }

  /**
   * Calls `visit` with each value from the most recently used to the least, until it returns false.
   * Not a generator: the grouper walks 100,000 streams every quarter second, and a generator makes
   * an object for each value it yields (32 bytes a stream a walk).
   */
  forEachNewest(visit: (value: V) => boolean | void): void {
    for (let value = this.mostRecent; value !== undefined; ) {
      // Read before the visit: it may make the value it was given the most recent.
      const next: V | undefined = value.lessRecent;
      if (visit(value) === false) return;
      value = next;
    }
  }

  /** Calls `visit` with each value from the least recently used to the most, until it returns false. */
  forEachOldest(visit: (value: V) => boolean | void): void {
    for (let value = this.leastRecent; value !== undefined; ) {
      const next: V | undefined = value.moreRecent;
      if (visit(value) === false) return;
      value = next;
    }
  }

  private moveToMostRecent(value: V): void {
    if (value === this.mostRecent) return;
    this.unlink(value);
    this.linkAsMostRecent(value);
  }

  private linkAsMostRecent(value: V): void {
    value.lessRecent = this.mostRecent;
    value.moreRecent = undefined;
    if (this.mostRecent !== undefined) this.mostRecent.moreRecent = value;
    else this.leastRecent = value;
    this.mostRecent = value;
  }

  private unlink(value: V): void {
    if (value.lessRecent !== undefined) value.lessRecent.moreRecent = value.moreRecent;
    else this.leastRecent = value.moreRecent;
    if (value.moreRecent !== undefined) value.moreRecent.lessRecent = value.lessRecent;
    else this.mostRecent = value.lessRecent;
    value.lessRecent = undefined;
    value.moreRecent = undefined;
  }
}
