/**
 * Reads the exception chain out of a grouped record: the thrown exception (first exception line
 * after the header) and every `Caused by:` in order. Frames (`at ...`, indented or not, since old
 * journald strips the tab), `... N more`, Netty leak records and `Suppressed:` blocks are skipped.
 */
import { parseLineHeader } from '../ingest/line-layout.js';
import type { ExceptionInfo } from './event.js';
import { EXCEPTION_LINE } from './line-kind.js';

export interface JavaTrace {
  exception: ExceptionInfo | null;
  causes: ExceptionInfo[];
}

const CAUSED_BY = 'Caused by: ';

function toExceptionInfo(match: RegExpExecArray): ExceptionInfo {
  return { class: match[1] as string, message: match[2] ?? '' };
}

/** The exception named by a line, or null. Tab-indented lines are frames or leak records, never the thrown exception. */
function exceptionOf(line: string): ExceptionInfo | null {
  if (line.charCodeAt(0) === 9) return null;
  const text = line.trimStart();
  // Cheap rejects first: frames and anything that cannot start a class name.
  const first = text.charCodeAt(0);
  if (!(first >= 97 && first <= 122) && first !== 95) return null;
  if (text.startsWith('at ') || text === 'at') return null;
  const match = EXCEPTION_LINE.exec(text);
  return match ? toExceptionInfo(match) : null;
}

/** `Caused by: X: msg`; a cause whose text is not a class name (a Scala toString) keeps its whole text as the class. */
function causeOf(line: string): ExceptionInfo | null {
  const text = line.trimStart();
  if (!text.startsWith(CAUSED_BY)) return null;
  const rest = text.slice(CAUSED_BY.length);
  const match = EXCEPTION_LINE.exec(rest);
  if (match) return toExceptionInfo(match);
  const colon = rest.indexOf(': ');
  return colon < 0 ? { class: rest, message: '' } : { class: rest.slice(0, colon), message: rest.slice(colon + 2) };
}

export function parseJavaTrace(lines: readonly string[]): JavaTrace {
  let exception: ExceptionInfo | null = null;
  const causes: ExceptionInfo[] = [];
  let startIndex = 0;
  let headerException: ExceptionInfo | null = null;
  const firstLine = lines[0];
  if (firstLine !== undefined) {
    const header = parseLineHeader(firstLine);
    if (header) {
      startIndex = 1;
      // `Exception in thread "main" java.lang.OutOfMemoryError: Java heap space` is both header and exception;
      // a linkerd header whose message is itself an exception text is the fallback when no line below names one.
      headerException = exceptionOf(header.text);
      if (header.layout === 'uncaught') exception = headerException;
    }
  }
  for (let index = startIndex; index < lines.length; index++) {
    const line = lines[index] as string;
    const cause = causeOf(line);
    if (cause) {
      causes.push(cause);
      continue;
    }
    if (exception === null) exception = exceptionOf(line);
  }
  return { exception: exception ?? headerException, causes };
}
