import { createHash } from 'node:crypto';

/**
 * An incident's id: a hash of its key and the event time of the event that opened it. The id is
 * fixed when the incident opens and kept through resolve → reopen, so links an SRE shared stay
 * valid; the same key opening a new incident (after the old one was pruned) gets a new id.
 */
export function incidentIdOf(key: string, openedAt: number): string {
  return createHash('sha256').update(key).update('\u0000').update(String(openedAt)).digest('hex').slice(0, 24);
}
