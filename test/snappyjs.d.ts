// snappyjs ships no type declarations; these cover the two functions the tests use (index.js).
declare module 'snappyjs' {
  /** Throws when the block is invalid or its declared length exceeds maxLength. */
  export function uncompress(compressed: Uint8Array, maxLength?: number): Uint8Array;
  export function compress(uncompressed: Uint8Array): Uint8Array;
}
