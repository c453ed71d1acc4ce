/** A closed multi-line record of one stream, as the grouper hands it to classification. */
/**
 * Why a group closed: the next record of its stream began, its process was replaced, its stream
 * fell silent (event time) or received nothing for the grouper's expiry (wall clock), a size limit,
 * room in the open-group cache, or the end of the input.
 */
export type CloseReason = 'next-record' | 'pid-change' | 'silence' | 'expired' | 'max-lines' | 'max-bytes' | 'evicted' | 'end-of-input';

export interface Group {
  stream: string;
  host: string;
  service: string;
  pid: string;
  /** Event time of the first line (ms since the epoch). */
  time: number;
  /** The lines, blank lines excluded, in source order. */
  lines: string[];
  truncated: boolean;
  closeReason: CloseReason;
}
