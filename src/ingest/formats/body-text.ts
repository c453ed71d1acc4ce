/**
 * A request body as text, a piece at a time. Making one string of a body of several MB cost more
 * than decoding it: on the bench's 1-10 MB bodies, Buffer#toString made 350 MB/s of whole-body
 * strings and 5 GB/s of 64 KiB ones that die young (a string that large is put in V8's large-object
 * space, in pages of its own that are mapped and faulted in for it, and lives until a full
 * collection). Pieces end where no character, line or value continues across them, so each
 * decodes to exactly the text the whole body would have there.
 */
import { CH_CARRIAGE_RETURN, CH_NEWLINE, CH_SPACE, CH_TAB } from '../../text/char-codes.js';

/** Bytes of body text made into one string at a time. */
export const TEXT_PIECE_BYTES = 64 * 1024;

/**
 * The body as strings that each end just after a line feed (the last one at the body's end), of
 * about TEXT_PIECE_BYTES or one whole line when it is longer: joined, they are the body's text.
 */
export function* linePieces(body: Buffer): Generator<string> {
  let start = 0;
  while (start < body.length) {
    let end = start + TEXT_PIECE_BYTES;
    if (end >= body.length) {
      end = body.length;
    } else {
      // A line feed is one byte that never occurs inside a UTF-8 character.
      const before = body.lastIndexOf(CH_NEWLINE, end - 1);
      if (before >= start) end = before + 1;
      else {
        const after = body.indexOf(CH_NEWLINE, end);
        end = after < 0 ? body.length : after + 1;
      }
    }
    yield body.toString('utf8', start, end);
    start = end;
  }
}

/**
 * The byte after each line (its line feed), negated unless its first byte passes `counts`
 * (undefined for an empty last line; spaces, tabs and CRs skipped first with `skipBlanks`): for
 * BatchBuilder#refuseIfCertainlyOver.
 */
export function* lineEnds(body: Buffer, counts: (firstByte: number | undefined) => boolean, skipBlanks = false): Generator<number> {
  let start = 0;
  while (start < body.length) {
    const feed = body.indexOf(CH_NEWLINE, start);
    const end = feed < 0 ? body.length : feed + 1;
    let first = start;
    if (skipBlanks) while (first < end && (body[first] === CH_SPACE || body[first] === CH_TAB || body[first] === CH_CARRIAGE_RETURN)) first++;
    yield counts(first < body.length ? body[first] : undefined) ? end : -end;
    start = end;
  }
}
