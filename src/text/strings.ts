/**
 * A copy of a string that shares no memory with the text it was cut from. A slice of a decoded
 * chunk keeps the whole chunk alive: what a cache or a long-lived state keeps is copied first.
 */
export function detached(text: string): string {
  // V8 copies slices this short anyway; JSON's round trip makes a fresh flat string of a longer one.
  return text.length < 13 ? text : (JSON.parse(JSON.stringify(text)) as string);
}

/**
 * One string object per value, for values that recur across records (service names): each
 * decoded batch brings its own copies, and 100,000 streams of one service kept 100,000 copies of
 * its name. The first `max` values seen are shared, so that it stays bounded; later ones pass
 * through as they are.
 */
export class SharedStrings {
  private readonly shared = new Map<string, string>();

  constructor(private readonly max: number) {}

  of(value: string): string {
    const shared = this.shared.get(value);
    if (shared !== undefined) return shared;
    if (this.shared.size < this.max) this.shared.set(value, value);
    return value;
  }
}
