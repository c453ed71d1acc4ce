/**
 * Built-in continuation shapes: the lines that continue a JVM trace or a Netty LEAK report on a
 * stream that has shown no header layout (exact texts: /work/shared/research/multiline.md Part B).
 * Char tests only: this runs for every non-header line of such streams.
 */
import { CH_COLON, CH_DOT, CH_HASH, CH_SPACE, CH_TAB, isDigit } from '../text/char-codes.js';

/** `#12:` at `start` (a leak access record number). */
function isRecordNumber(line: string, start: number): boolean {
  let index = start + 1;
  if (!isDigit(line.charCodeAt(index))) return false;
  while (isDigit(line.charCodeAt(index))) index++;
  return line.charCodeAt(index) === CH_COLON;
}

/** `N leak records ...` at `start`. */
function isLeakRecordCount(line: string, start: number): boolean {
  let index = start;
  if (!isDigit(line.charCodeAt(index))) return false;
  while (isDigit(line.charCodeAt(index))) index++;
  return line.startsWith(' leak records', index);
}

/**
 * True for a line that can only continue a trace: anything indented (frames, `\tHint:`, leak
 * records, `\t... N more`, indented `Caused by:` of suppressed blocks), `at ...` without indent
 * (journald before systemd 228 strips the tab), `Caused by:`, `Suppressed:`, `... N more`,
 * `... N common frames omitted`, and the Netty LEAK report lines.
 */
export function isContinuationLine(line: string): boolean {
  const first = line.charCodeAt(0);
  if (first === CH_TAB || first === CH_SPACE) return true;
  switch (first) {
    case 97: // a: `at `, or a bare `at` whose frame text was lost
      return line.charCodeAt(1) === 116 && (line.length === 2 || line.charCodeAt(2) === CH_SPACE || line.charCodeAt(2) === CH_TAB);
    case 67: // C: `Caused by:`, `Created at:`
      return line.startsWith('Caused by:') || line.startsWith('Created at:');
    case 83: // S: `Suppressed:`
      return line.startsWith('Suppressed:');
    case CH_DOT: // `... 12 more`, `... 27 common frames omitted`
      return line.startsWith('... ') && isDigit(line.charCodeAt(4));
    case 82: // R: `Recent access records:`
      return line.startsWith('Recent access records:');
    case CH_HASH:
      return isRecordNumber(line, 0);
    case 72: // H: `Hint: ...` once journald stripped the tab
      return line.startsWith('Hint: ');
    case CH_COLON: // `: 57 leak records were discarded because ...`
      return line.charCodeAt(1) === CH_SPACE && isLeakRecordCount(line, 2);
    case 87: // W: `WARNING: 3 leak records were discarded because ...`
      return line.startsWith('WARNING: ') && isLeakRecordCount(line, 9);
    default:
      // `4 leak records were not sampled because ...` (netty 4.1.16)
      return isDigit(first) && isLeakRecordCount(line, 0);
  }
}

/** Blank or whitespace-only: never part of a group, and never a reason to close one. */
export function isBlankLine(line: string): boolean {
  const length = line.length;
  if (length === 0) return true;
  const first = line.charCodeAt(0);
  if (first > CH_SPACE) return false;
  for (let index = 0; index < length; index++) {
    const code = line.charCodeAt(index);
    if (code !== CH_SPACE && code !== CH_TAB && code !== 13) return false;
  }
  return true;
}
