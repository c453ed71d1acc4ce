/**
 * A copy of a string that shares no memory with the text it was cut from. A slice of a decoded
 * chunk keeps the whole chunk alive: what a cache or a long-lived state keeps is copied first.
 */
export function detached(text: string): string {
  // V8 copies slices this short anyway; JSON's round trip makes a fresh flat string of a longer one.
  return text.length < 13 ? text : (JSON.parse(JSON.stringify(text)) as string);
}
