/**
 * recheck's verdict on one pattern. Used in the checking thread (regex-safety-worker.ts), or in
 * process where there is no compiled worker (running from the TypeScript sources).
 */
import type { SafetyVerdict } from './regex-safety.js';

function shorten(text: string, max = 60): string {
  const printable = JSON.stringify(text);
  return printable.length <= max ? printable : `${printable.slice(0, max - 5)}..." (${text.length} chars)`;
}

export async function recheckVerdict(source: string, timeoutMs: number): Promise<SafetyVerdict> {
  try {
    // The fuzzing checker: the automaton checker proves more but took 4-5 s per long literal-heavy
    // pattern on this 2-core machine (0.1-0.3 s with fuzzing), which a reload cannot afford.
    // Imported on first use: recheck is a large module (about 30 MiB resident).
    const { check } = await import('recheck');
    const diagnostics = await check(source, '', { timeout: timeoutMs, checker: 'fuzz' });
    if (diagnostics.status === 'safe') return { status: 'safe', detail: diagnostics.complexity.summary };
    if (diagnostics.status === 'vulnerable') {
      return { status: 'vulnerable', detail: `${diagnostics.complexity.summary} backtracking, e.g. on ${shorten(diagnostics.attack.string)}` };
    }
    const error = diagnostics.error;
    const why = error.kind === 'timeout' ? `no verdict within ${timeoutMs} ms` : `${error.kind}${'message' in error ? `: ${error.message}` : ''}`;
    return { status: 'unknown', detail: why };
  } catch (error) {
    return { status: 'unknown', detail: `checker failed: ${String(error)}` };
  }
}
