/**
 * The grouper's clocks of each stream, kept in pages of doubles rather than in fields of its state.
 * V8 keeps a double held in an object's field in a box of its own (16 bytes, beside the 8-byte
 * field), so four clocks cost 96 bytes a stream as fields and 40 here: a server may hold 100,000
 * streams. Pages of a fixed size, so that growing never copies what is there nor leaves a large
 * array behind for the next full collection.
 */

/** Which clock of a stream (its offset in the stream's slot). */
export const Clock = {
  /** Event time of the open group's first line (ms since the epoch). */
  GroupTime: 0,
  /** Journal position of the open group's first journaled record; NaN when it has none. */
  FirstPosition: 1,
  /** Wall-clock ms of the stream's last record received (held or not). */
  LastArrival: 2,
  /** Source clock (µs) of the stream's last record grouped, for silence in event time; NaN before one. */
  LastSourceUs: 3,
} as const;
export type Clock = (typeof Clock)[keyof typeof Clock];

const CLOCKS = 4;
const PAGE_SLOT_BITS = 10;
const PAGE_SLOTS = 1 << PAGE_SLOT_BITS;
const SLOT_IN_PAGE = PAGE_SLOTS - 1;

export class StreamClocks {
  private readonly pages: Float64Array[] = [];
  /** Slots given back, reused before new ones. */
  private readonly freeSlots: number[] = [];
  private slotsMade = 0;

  /** A slot for a new stream, its clocks as a new state starts them. */
  allocate(): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.slotsMade++;
      if (slot >>> PAGE_SLOT_BITS === this.pages.length) this.pages.push(new Float64Array(PAGE_SLOTS * CLOCKS));
    }
    const page = this.pages[slot >>> PAGE_SLOT_BITS] as Float64Array;
    const at = (slot & SLOT_IN_PAGE) * CLOCKS;
    page[at + Clock.GroupTime] = 0;
    page[at + Clock.FirstPosition] = Number.NaN;
    page[at + Clock.LastArrival] = 0;
    page[at + Clock.LastSourceUs] = Number.NaN;
    return slot;
  }

  /** The stream is gone: its slot may be given to another. */
  release(slot: number): void {
    this.freeSlots.push(slot);
  }

  get(slot: number, clock: Clock): number {
    return (this.pages[slot >>> PAGE_SLOT_BITS] as Float64Array)[(slot & SLOT_IN_PAGE) * CLOCKS + clock] as number;
  }

  set(slot: number, clock: Clock, value: number): void {
    (this.pages[slot >>> PAGE_SLOT_BITS] as Float64Array)[(slot & SLOT_IN_PAGE) * CLOCKS + clock] = value;
  }
}
