/** A closed multi-line record of one stream, as the grouper hands it to classification. */
export type CloseReason = 'next-header' | 'pid-change' | 'silence' | 'max-lines' | 'max-bytes' | 'evicted' | 'end-of-input';

export interface Group {
  stream: string;
  host: string;
  service: string;
  pid: string;
  /** Event time of the first line (ms since the epoch). */
  time: number;
  /** The lines, blank lines excluded, in arrival order. */
  lines: string[];
  truncated: boolean;
  closeReason: CloseReason;
  /** Ingest-journal batch of the first line: batches from here on must be kept until the group closes. */
  seq?: number;
}
