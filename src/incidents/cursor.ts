/** Opaque pagination position for GET /incidents: base64url of JSON [last_seen, id]. */
export interface CursorPosition {
  last_seen: number;
  id: string;
}

export function encodeCursor(position: CursorPosition): string {
  return Buffer.from(JSON.stringify([position.last_seen, position.id]), 'utf8').toString('base64url');
}

/** Returns undefined for anything that is not a cursor this module produced. */
export function decodeCursor(cursor: string): CursorPosition | undefined {
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) return undefined;
  const [lastSeen, id] = parsed as unknown[];
  if (typeof lastSeen !== 'number' || !Number.isSafeInteger(lastSeen) || typeof id !== 'string') return undefined;
  return { last_seen: lastSeen, id };
}
