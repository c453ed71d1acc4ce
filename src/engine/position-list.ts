/**
 * Journal positions gathered into one Float64Array that is kept from one gathering to the next.
 * A checkpoint gathers every pending position once a second (100,000 and more with many open
 * streams): pushed onto a new array each time, the array's grown copies were ~2-3 MB a second of
 * large objects, which wait in the old generation for a full collection.
 */
export class PositionList {
  private values = new Float64Array(1024);
  length = 0;

  push(position: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = position;
  }

  /**
   * The positions gathered since the last call, as an array of their own (one allocation outside
   * the heap, freed with its wrapper), and the list empty again. A list grown by a flood gives its
   * room back once gatherings are four times smaller.
   */
  take(): Float64Array {
    const taken = this.values.slice(0, this.length);
    if (this.values.length > 1024 && this.length * 4 < this.values.length) this.values = new Float64Array(Math.max(1024, this.length * 2));
    this.length = 0;
    return taken;
  }
}
