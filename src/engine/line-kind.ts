/**
 * What one line can be inside a JVM log, told from its own shape: the alphabet of the per-stream
 * grouping state machine (grouper.ts), after fluent-plugin-detect-exceptions' line rules
 * (https://github.com/GoogleCloudPlatform/fluent-plugin-detect-exceptions, exception_detector.rb)
 * widened to what linkerd, Finagle and Netty print and to what old journald does to it (systemd
 * before v228 strips leading whitespace, https://github.com/systemd/systemd/pull/1937, seen in
 * https://github.com/linkerd/linkerd/issues/1690).
 *
 * Header lines (a log layout's prefix) are told apart by line-layout.ts and the grouper's own
 * patterns before this runs. Char tests first: this runs for every non-header line.
 */
import { CH_COLON, CH_DOT, CH_HASH, CH_SPACE, CH_TAB, isDigit } from '../text/char-codes.js';

export const LineKind = {
  /** Empty or whitespace only: never part of a group, never a reason to close one. */
  Blank: 0,
  /**
   * A stack frame or anything only a trace contains: `\tat ...`, `at ...` without indent,
   * `... N more`, Netty LEAK report lines, a bare `pkg.Class.method(File.java:1)`, any indented line.
   */
  Frame: 1,
  /** `Caused by: ...` or `Suppressed: ...` (indented or not): a new throwable inside the same trace. */
  Cause: 2,
  /** `nested exception is:` (RMI, JavaMail, old Spring): the next line is a throwable of the same trace. */
  Nested: 3,
  /** A throwable's toString() at column 0: `java.io.IOException: Connection reset by peer`. */
  ExceptionStart: 4,
  /** Anything else: prose, println output, a banner, a throwable whose toString is not a class name. */
  Plain: 5,
} as const;

export type LineKind = (typeof LineKind)[keyof typeof LineKind];

/**
 * A Java binary class name, then optionally `: message`. Package segments start lower-case and the
 * simple name upper-case, so `Reset.Cancel`, `linkerd 1.3.6` or `some.key: value` are not exceptions,
 * while `io.netty.channel.unix.Errors$NativeIoException` and `com.twitter.io.Reader$ReaderDiscarded` are.
 */
export const EXCEPTION_LINE = /^((?:[a-z_][\w$]*\.)+[A-Z_$][\w$]*)(?:: ?([^]*))?$/;

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
 * A StackTraceElement printed without its `at ` and indentation: Netty's LEAK records print frames
 * as `\tio.netty.X.y(X.java:1)`, and old journald strips the tab. `module/` and `loader//` prefixes
 * (Java 9+) are allowed; the name before `(` has no spaces and at least one dot.
 */
function isBareFrame(line: string, start: number): boolean {
  if (line.charCodeAt(line.length - 1) !== 41 /* ) */) return false;
  const open = line.indexOf('(', start);
  if (open < start + 3) return false;
  let dots = 0;
  for (let index = start; index < open; index++) {
    const code = line.charCodeAt(index);
    if (code === CH_SPACE || code === CH_TAB || code === CH_COLON) return false;
    if (code === CH_DOT) dots++;
  }
  return dots > 0 && line.indexOf('(', open + 1) < 0;
}

/** After `at`: the space before the frame, or what is left of a frame whose name was lost (`$`, `(`, `)`). */
function isFrameTextStart(code: number): boolean {
  return code === CH_SPACE || code === CH_TAB || code === 36 /* $ */ || code === 40 /* ( */ || code === 41 /* ) */;
}

/**
 * Classifies a line that is not a header. Indentation alone does not make a frame: the indented
 * text must itself be a trace line (`at ...`, `... N more`, a cause, a LEAK record line, a bare
 * frame), so that banners and indented prose are not mistaken for one.
 */
export function lineKindOf(line: string): LineKind {
  const length = line.length;
  if (length === 0) return LineKind.Blank;
  const first = line.charCodeAt(0);
  if (first !== CH_TAB && first !== CH_SPACE && first !== 13) return kindAt(line, 0);
  let start = 1;
  while (start < length) {
    const code = line.charCodeAt(start);
    if (code !== CH_SPACE && code !== CH_TAB && code !== 13) break;
    start++;
  }
  if (start === length) return LineKind.Blank;
  // Indented text that is not a trace line is Plain: a banner, pretty-printed output, a message's continuation.
  return kindAt(line, start);
}

/** The kind of the text from `start` on (after any indentation). */
function kindAt(line: string, start: number): LineKind {
  const length = line.length - start;
  const first = line.charCodeAt(start);
  switch (first) {
    case 97: // a: `at `, or an `at` whose frame text was lost in copying (`at`, `at$`, `at Method)`)
      if (line.charCodeAt(start + 1) === 116 && (length === 2 || isFrameTextStart(line.charCodeAt(start + 2)))) return LineKind.Frame;
      break;
    case 67: // C: `Caused by:`, `Created at:`
      if (line.startsWith('Caused by:', start)) return LineKind.Cause;
      if (line.startsWith('Created at:', start)) return LineKind.Frame;
      break;
    case 83: // S: `Suppressed:`
      if (line.startsWith('Suppressed:', start)) return LineKind.Cause;
      break;
    case CH_DOT: // `... 12 more`, `... 27 common frames omitted`
      if (line.startsWith('... ', start) && isDigit(line.charCodeAt(start + 4))) return LineKind.Frame;
      break;
    case 82: // R: `Recent access records:`
      if (line.startsWith('Recent access records:', start)) return LineKind.Frame;
      break;
    case CH_HASH:
      if (isRecordNumber(line, start)) return LineKind.Frame;
      break;
    case 72: // H: `Hint: ...`
      if (line.startsWith('Hint: ', start)) return LineKind.Frame;
      break;
    case CH_COLON: // `: 57 leak records were discarded because ...`
      if (line.charCodeAt(start + 1) === CH_SPACE && isLeakRecordCount(line, start + 2)) return LineKind.Frame;
      break;
    case 87: // W: `WARNING: 3 leak records were discarded because ...`
      if (line.startsWith('WARNING: ', start) && isLeakRecordCount(line, start + 9)) return LineKind.Frame;
      break;
    case 110: // n: `nested exception is:`
      if (line.startsWith('nested exception is', start)) return LineKind.Nested;
      break;
    default:
      // `4 leak records were not sampled because ...` (netty 4.1.16)
      if (isDigit(first) && isLeakRecordCount(line, start)) return LineKind.Frame;
  }
  const lower = (first >= 97 && first <= 122) || first === 95;
  // A frame's class may be in the default package (`NettyFailures$Handler.read(...)`), upper-case.
  if ((lower || (first >= 65 && first <= 90) || first === 36) && isBareFrame(line, start)) return LineKind.Frame;
  // Exception class names start with a lower-case package (or `_`); everything else is prose.
  if (lower && start === 0 && EXCEPTION_LINE.test(line)) return LineKind.ExceptionStart;
  return LineKind.Plain;
}

/**
 * Whether a plain line looks like a throwable's toString() of a shape no class-name rule knows:
 * its first word is a dotted or `$`/`(`-bearing name (`Reset.Cancel`, `Failure(...)`), or it names
 * an Exception, Error or Throwable. Prose, banners and println output do not.
 */
export function looksLikeThrowable(line: string): boolean {
  const first = line.charCodeAt(0);
  if (first === CH_SPACE || first === CH_TAB) return false;
  const space = line.indexOf(' ');
  const word = space < 0 ? line : line.slice(0, space);
  if (/^[A-Za-z_$][\w$]*(?:[.$(]|$)/.test(word) && /[.$(]/.test(word)) return true;
  return /(?:Exception|Error|Throwable)\b/.test(line);
}
