import type { GroupedRecord } from '../engine/grouped-record.js';
import type { UnclassifiedTally } from '../engine/unclassified-tally.js';

export type OutputFormat = 'table' | 'ndjson';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'ndjson'];

const TABLE_COLUMNS = ['TIME', 'HOST', 'SERVICE', 'PID', 'CATEGORY', 'SEVERITY', 'LINES', 'SUMMARY'] as const;

function tableCells(event: GroupedRecord): string[] {
  const numbers = event.fields;
  const summary = event.annotations.summary ?? event.message;
  return [
    event.timestamp,
    event.host || '-',
    event.service || '-',
    event.pid || '-',
    (event.category ?? '-') + (event.tags.length > 0 ? ` [${event.tags.join(',')}]` : ''),
    event.severity ?? '-',
    String(event.line_count) + (event.truncated ? '+' : ''),
    // The numbers an SRE looks for first, when the rule extracted them.
    typeof numbers.used_bytes === 'number' && typeof numbers.max_bytes === 'number' && !summary.includes(String(numbers.used_bytes))
      ? `${summary} (used ${numbers.used_bytes} of ${numbers.max_bytes})`
      : summary,
  ];
}

/**
 * Table output is written as events arrive (column widths are fixed, not measured over the
 * whole output), so analyzing a huge file never holds its events in memory.
 */
export class EventWriter {
  private wroteHeader = false;

  constructor(
    private readonly format: OutputFormat,
    private readonly write: (text: string) => void,
  ) {}

  events(events: readonly GroupedRecord[]): void {
    if (events.length === 0) return;
    let out = '';
    for (const event of events) {
      if (this.format === 'ndjson') {
        out += JSON.stringify(event) + '\n';
        continue;
      }
      if (!this.wroteHeader) {
        out += formatRow([...TABLE_COLUMNS]);
        this.wroteHeader = true;
      }
      out += formatRow(tableCells(event));
    }
    this.write(out);
  }
}

/**
 * The closing lines of a table: how many traces no rule classified and their commonest first
 * lines, which is where the next rule is to be found. Empty when every trace was classified.
 */
export function unclassifiedSummary(tally: UnclassifiedTally, limit = 5): string {
  if (tally.total === 0) return '';
  let out = `\n${tally.total} unclassified trace${tally.total === 1 ? '' : 's'} (multi-line records no rule matched; \`--all\` lists them). Commonest first lines:\n`;
  for (const { firstLine, count } of tally.commonest(limit)) out += `${String(count).padStart(7)}  ${firstLine}\n`;
  return out;
}

const WIDTHS = [24, 12, 12, 7, 44, 8, 5];

function formatRow(cells: string[]): string {
  return cells.map((cell, i) => (i < WIDTHS.length ? cell.padEnd(WIDTHS[i]!) : cell)).join(' ').trimEnd() + '\n';
}
