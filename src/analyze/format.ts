/**
 * analyze's output. ndjson is written as records close (one JSON object per line, nothing held).
 * The table is for people: its rows are kept (a few hundred bytes each), sorted by time, printed
 * with columns as wide as their widest cell, and followed by a summary by category and host.
 */
import type { GroupedRecord } from '../engine/grouped-record.js';
import type { UnclassifiedTally } from '../engine/unclassified-tally.js';

export type OutputFormat = 'table' | 'ndjson';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'ndjson'];

/** One row of the table and what the summary counts of it. */
export interface TableRow {
  /** ISO time: sorts as text. */
  timestamp: string;
  cells: string[];
  /** null for a record no rule classified (`--all`). */
  category: string | null;
  host: string;
  incidentKey: string | null;
}

/** A closed record as the output needs it, made in the thread that classified it. */
export type FormattedRecord = { event: boolean; text: string; row?: undefined } | { event: boolean; row: TableRow; text?: undefined };

const TABLE_COLUMNS = ['TIME', 'HOST', 'SERVICE', 'PID', 'CATEGORY', 'SEVERITY', 'LINES', 'SUMMARY'] as const;

export function formatRecord(record: GroupedRecord, format: OutputFormat): FormattedRecord {
  const event = record.category !== null;
  if (format === 'ndjson') return { event, text: JSON.stringify(record) + '\n' };
  return { event, row: { timestamp: record.timestamp, cells: tableCells(record), category: record.category, host: record.host, incidentKey: record.incident_key } };
}

function tableCells(record: GroupedRecord): string[] {
  const numbers = record.fields;
  const summary = record.annotations.summary ?? record.message;
  return [
    record.timestamp,
    record.host || '-',
    record.service || '-',
    record.pid || '-',
    (record.category ?? '-') + (record.tags.length > 0 ? ` [${record.tags.join(',')}]` : ''),
    record.severity ?? '-',
    String(record.line_count) + (record.truncated ? '+' : ''),
    // The numbers an SRE looks for first, when the rule extracted them.
    typeof numbers.used_bytes === 'number' && typeof numbers.max_bytes === 'number' && !summary.includes(String(numbers.used_bytes))
      ? `${summary} (used ${numbers.used_bytes} of ${numbers.max_bytes})`
      : summary,
  ];
}

/** The table's rows, kept until the end of input, then sorted by time (equal times keep close order). */
export class TableWriter {
  private rows: TableRow[] = [];

  add(row: TableRow): void {
    this.rows.push(row);
  }

  /** The whole table, header first; empty when there is no row. */
  render(): string {
    const rows = this.rows;
    this.rows = [];
    if (rows.length === 0) return '';
    rows.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
    const widths = TABLE_COLUMNS.map((title) => title.length);
    for (const row of rows) {
      for (let column = 0; column < widths.length - 1; column++) widths[column] = Math.max(widths[column] as number, (row.cells[column] as string).length);
    }
    let out = formatRow([...TABLE_COLUMNS], widths);
    for (const row of rows) out += formatRow(row.cells, widths);
    return out;
  }
}

function formatRow(cells: readonly string[], widths: readonly number[]): string {
  let line = '';
  for (let column = 0; column < cells.length; column++) {
    const cell = cells[column] as string;
    line += column < cells.length - 1 ? cell.padEnd(widths[column] as number) + '  ' : cell;
  }
  return line.trimEnd() + '\n';
}

/** Events and incidents (distinct incident keys) by category and by host: the table's last lines. */
export class EventSummary {
  private readonly byCategory = new Map<string, Tally>();
  private readonly byHost = new Map<string, Tally>();
  private events = 0;
  private readonly incidents = new Set<string>();

  add(row: TableRow): void {
    if (row.category === null || row.incidentKey === null) return;
    this.events++;
    this.incidents.add(row.incidentKey);
    tally(this.byCategory, row.category, row.incidentKey);
    tally(this.byHost, row.host || '(no host)', row.incidentKey);
  }

  render(): string {
    if (this.events === 0) return '\nNo events.\n';
    let out = `\n${plural(this.events, 'event')} in ${plural(this.incidents.size, 'incident')}\n`;
    out += section('CATEGORY', this.byCategory);
    out += section('HOST', this.byHost);
    return out;
  }
}

interface Tally {
  events: number;
  incidents: Set<string>;
}

function tally(map: Map<string, Tally>, name: string, incidentKey: string): void {
  let entry = map.get(name);
  if (entry === undefined) {
    entry = { events: 0, incidents: new Set() };
    map.set(name, entry);
  }
  entry.events++;
  entry.incidents.add(incidentKey);
}

/** Most events first (names in order among equals), with measured columns. */
function section(title: string, map: ReadonlyMap<string, Tally>): string {
  const entries = [...map.entries()].sort((a, b) => b[1].events - a[1].events || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const width = Math.max(title.length, ...entries.map(([name]) => name.length));
  let out = `\n${title.padEnd(width)}  EVENTS  INCIDENTS\n`;
  for (const [name, entry] of entries) out += `${name.padEnd(width)}  ${String(entry.events).padStart(6)}  ${String(entry.incidents.size).padStart(9)}\n`;
  return out;
}

function plural(count: number, word: string): string {
  return `${count.toLocaleString('en-US')} ${word}${count === 1 ? '' : 's'}`;
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
