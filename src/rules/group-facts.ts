/**
 * What predicates and extractions read from a group besides its text: the log level of the first
 * line (src/ingest/line-layout.ts) and the Java exception chain (src/engine/java-trace.ts).
 */
import { parseLineHeader } from '../ingest/line-layout.js';

export { parseJavaTrace, type JavaTrace } from '../engine/java-trace.js';

/** Upper-case level word of the line's header (TRACE DEBUG INFO WARN ERROR FATAL), '' when it has none. */
export function levelOf(line: string): string {
  return parseLineHeader(line)?.level ?? '';
}
