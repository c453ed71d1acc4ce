/**
 * A Map bounded to `max` entries that forgets the least recently used first: the part of
 * lru-cache's LRUCache the grouper and the count windows use (get, peek, set, size, visiting the values
 * from the most or the least recent, a callback on eviction before the new entry goes
 * in). Unlike LRUCache it allocates per entry, not `max` slots up front: LRUCache fills two arrays
 * of `max` slots when it is made (1.6 MB for the grouper's 100,000 streams), which every `analyze`
 * shard and the server held whatever the number of streams they saw.
 */
interface Entry<K, V> {
  readonly key: K;
  value: V;
  /** Toward the least recently used end; undefined at that end. */
  older: Entry<K, V> | undefined;
  /** Toward the most recently used end; undefined at that end. */
  newer: Entry<K, V> | undefined;
}

export interface RecencyMapOptions<K, V> {
  max: number;
  /** Told of an entry pushed out to make room, before the entry that needed it is added. */
  onEvict?: (value: V, key: K) => void;
}

export class RecencyMap<K, V> {
  private readonly entries = new Map<K, Entry<K, V>>();
  private oldest: Entry<K, V> | undefined;
  private newest: Entry<K, V> | undefined;
  private readonly max: number;
  private readonly onEvict: ((value: V, key: K) => void) | undefined;

  constructor(options: RecencyMapOptions<K, V>) {
    if (!(Number.isInteger(options.max) && options.max >= 1)) throw new RangeError(`a RecencyMap holds at least one entry (max ${options.max})`);
    this.max = options.max;
    this.onEvict = options.onEvict;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.moveToNewest(entry);
    return entry.value;
  }

  /** The value, its recency unchanged. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** Sets the value, now the most recently used; a new key in a full map first evicts the least recently used. */
  set(key: K, value: V): this {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      existing.value = value;
      this.moveToNewest(existing);
      return this;
    }
    if (this.entries.size >= this.max && this.oldest !== undefined) {
      const evicted = this.oldest;
      this.onEvict?.(evicted.value, evicted.key);
      // The callback may have touched the map: unlink the entry wherever it is now, if still there.
      if (this.entries.get(evicted.key) === evicted) this.unlink(evicted);
    }
    const entry: Entry<K, V> = { key, value, older: this.newest, newer: undefined };
    if (this.newest !== undefined) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
    this.entries.set(key, entry);
    return this;
  }

  /**
   * Calls `visit` with each value from the most recently used to the least, until it returns false.
   * Not a generator: the grouper walks 100,000 streams every quarter second, and a generator makes
   * an object for each value it yields (32 bytes a stream a walk).
   */
  forEachNewest(visit: (value: V) => boolean | void): void {
    for (let entry = this.newest; entry !== undefined; ) {
      // Read before the visit: it may make the entry it was given the most recent.
      const next: Entry<K, V> | undefined = entry.older;
      if (visit(entry.value) === false) return;
      entry = next;
    }
  }

  /** Calls `visit` with each value from the least recently used to the most, until it returns false. */
  forEachOldest(visit: (value: V) => boolean | void): void {
    for (let entry = this.oldest; entry !== undefined; ) {
      const next: Entry<K, V> | undefined = entry.newer;
      if (visit(entry.value) === false) return;
      entry = next;
    }
  }

  private moveToNewest(entry: Entry<K, V>): void {
    if (entry === this.newest) return;
    // Not the newest: something newer exists.
    const newer = entry.newer as Entry<K, V>;
    newer.older = entry.older;
    if (entry.older !== undefined) entry.older.newer = newer;
    else this.oldest = newer;
    entry.older = this.newest;
    entry.newer = undefined;
    (this.newest as Entry<K, V>).newer = entry;
    this.newest = entry;
  }

  private unlink(entry: Entry<K, V>): void {
    if (entry.older !== undefined) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    if (entry.newer !== undefined) entry.newer.older = entry.older;
    else this.newest = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
    this.entries.delete(entry.key);
  }
}
