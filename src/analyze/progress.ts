/**
 * analyze's progress on a terminal's stderr: bytes read of the total, lines, lines per second and,
 * when the total is known (files, not stdin), the time left. One line, redrawn at most every 200 ms.
 */
import { formatBytes } from '../units.js';

const REDRAW_MS = 200;

export class ProgressLine {
  private total: number | undefined;
  private readonly started = performance.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  start(totalBytes: number | undefined): void {
    this.total = totalBytes;
  }

  update(bytes: number, lines: number): void {
    const now = performance.now();
    if (now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    const seconds = (now - this.started) / 1000;
    let text = `analyze: ${lines.toLocaleString('en-US')} lines, ${Math.round(lines / Math.max(seconds, 1e-3)).toLocaleString('en-US')} lines/s`;
    if (this.total !== undefined && this.total > 0) {
      const share = Math.min(1, bytes / this.total);
      const left = share > 0 ? (seconds / share) * (1 - share) : Number.NaN;
      text += `, ${formatBytes(bytes)} of ${formatBytes(this.total)} (${Math.floor(share * 100)}%)`;
      text += Number.isFinite(left) ? `, ETA ${formatSeconds(left)}` : '';
    } else {
      text += `, ${formatBytes(bytes)} read`;
    }
    // Kept to one line of the terminal (a pseudo-terminal may not say how wide it is).
    const columns = this.stream.columns > 0 ? this.stream.columns : Number.POSITIVE_INFINITY;
    this.stream.write(`\r${text.length >= columns ? text.slice(0, columns - 1) : text}\u001b[K`);
    this.drawn = true;
  }

  /** Removes the line (before anything else is written to stderr). */
  clear(): void {
    if (!this.drawn) return;
    this.stream.write('\r\u001b[K');
    this.drawn = false;
  }
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s` : `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
