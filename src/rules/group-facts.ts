/**
 * What predicates and extractions read from a group besides its text: the log level of the first
 * line and the Java exception chain. The engine and ingest engineers own the real parsers
 * (src/engine/java-trace.ts `parseJavaTrace`, src/ingest/line-layout.ts `parseLineHeader`); they are
 * loaded when present, and the small local fallbacks below keep the rules working until then.
 */
import type { ExceptionInfo } from '../engine/event.js';

export interface JavaTrace {
  exception: ExceptionInfo | null;
  causes: ExceptionInfo[];
}

type ParseJavaTrace = (lines: readonly string[]) => JavaTrace;

// A qualified Java class name whose simple name says it is a throwable (or a nested one, Errors$NativeIoException).
const EXCEPTION_LINE =
  /^\s*(?:Exception in thread "[^"]*" )?((?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable|Failure)[\w$]*)(?::\s?(.*))?$/;
const CAUSE_LINE = /^\s*(?:Caused by|Suppressed): ((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*)(?::\s?(.*))?$/;
const FRAME_LINE = /^\s*at\s/;

function localParseJavaTrace(lines: readonly string[]): JavaTrace {
  let exception: ExceptionInfo | null = null;
  const causes: ExceptionInfo[] = [];
  for (const line of lines) {
    if (FRAME_LINE.test(line)) continue;
    const cause = CAUSE_LINE.exec(line);
    if (cause) {
      if (exception) causes.push({ class: cause[1] as string, message: cause[2] ?? '' });
      continue;
    }
    if (exception) continue;
    const thrown = EXCEPTION_LINE.exec(line);
    if (thrown) exception = { class: thrown[1] as string, message: thrown[2] ?? '' };
  }
  return { exception, causes };
}

const LINKERD_LEVELS: Record<string, string> = { D: 'DEBUG', I: 'INFO', W: 'WARN', E: 'ERROR', F: 'FATAL', T: 'TRACE' };
const WORD_LEVELS = new Set(['TRACE', 'DEBUG', 'INFO', 'WARN', 'WARNING', 'ERROR', 'FATAL', 'SEVERE']);

/** Upper-case level word (TRACE DEBUG INFO WARN ERROR FATAL) of a line's header, '' when it has none. */
function localLevelOf(line: string): string {
  const linkerd = /^([DIWEFT]) \d{4} \d\d:\d\d:\d\d/.exec(line);
  if (linkerd) return LINKERD_LEVELS[linkerd[1] as string] ?? '';
  const word = /^\s*([A-Z]{4,7})\s/.exec(line);
  if (word && WORD_LEVELS.has(word[1] as string)) return word[1] === 'WARNING' ? 'WARN' : (word[1] as string);
  const iso = /^\d{4}-\d\d-\d\d[ T][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?\s+(?:\[[^\]]*\]\s+)?([A-Z]{4,7})\b/.exec(line);
  if (iso && WORD_LEVELS.has(iso[1] as string)) return iso[1] === 'WARNING' ? 'WARN' : (iso[1] as string);
  return '';
}

async function optionalModule(specifier: string): Promise<Record<string, unknown> | null> {
  try {
    // A variable specifier: the module may not exist yet, and its absence must not break typechecking.
    return (await import(specifier)) as Record<string, unknown>;
  } catch {
    return null;
  }
}

const javaTraceModule = await optionalModule('../engine/java-trace.js');
const lineLayoutModule = await optionalModule('../ingest/line-layout.js');

export const parseJavaTrace: ParseJavaTrace =
  typeof javaTraceModule?.parseJavaTrace === 'function' ? (javaTraceModule.parseJavaTrace as ParseJavaTrace) : localParseJavaTrace;

const sharedParseLineHeader =
  typeof lineLayoutModule?.parseLineHeader === 'function' ? (lineLayoutModule.parseLineHeader as (line: string) => unknown) : null;

export function levelOf(line: string): string {
  if (sharedParseLineHeader) {
    const header = sharedParseLineHeader(line);
    if (header && typeof header === 'object' && 'level' in header && typeof header.level === 'string' && header.level !== '') {
      const level = header.level.toUpperCase();
      return LINKERD_LEVELS[level] ?? (level === 'WARNING' ? 'WARN' : level);
    }
  }
  return localLevelOf(line);
}
