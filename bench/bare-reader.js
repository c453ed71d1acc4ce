// The least any Node.js program does with analyze's input, as the same-run yardstick for
// `analyze_lines_per_s`: start, read the file in chunks of 512 KiB, cut it into lines and make
// each line a string. No parsing, no grouping, no output but the counts of lines and characters on
// stdout (the characters, so that the strings are used).
import { closeSync, openSync, readSync } from 'node:fs';

const CHUNK_BYTES = 512 * 1024;
const NEWLINE = 10;

const file = openSync(process.argv[2], 'r');
const buffer = Buffer.allocUnsafe(CHUNK_BYTES * 2);
let lines = 0;
let characters = 0;
let carried = 0;
for (;;) {
  const read = readSync(file, buffer, carried, CHUNK_BYTES, null);
  const filled = carried + read;
  let start = 0;
  for (let end = buffer.indexOf(NEWLINE, start); end >= 0 && end < filled; end = buffer.indexOf(NEWLINE, start)) {
    characters += buffer.toString('latin1', start, end).length;
    lines++;
    start = end + 1;
  }
  if (read === 0) {
    if (start < filled) lines++;
    break;
  }
  // The unfinished last line moves to the front.
  carried = filled - start;
  if (carried > CHUNK_BYTES) throw new Error(`bench/bare-reader.js: a line of over ${CHUNK_BYTES} bytes`);
  buffer.copy(buffer, 0, start, filled);
}
closeSync(file);
process.stdout.write(`${lines} ${characters}\n`);
