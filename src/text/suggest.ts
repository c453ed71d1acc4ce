/** "Did you mean" for names people type: the closest allowed name by edit distance, when close enough. */

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/** The allowed name nearest to `unknown`, if it is within a third of its length (at least 2 edits). */
export function closestName(unknown: string, allowed: readonly string[]): string | undefined {
  const best = allowed.map((name) => ({ name, distance: editDistance(unknown, name) })).sort((a, b) => a.distance - b.distance)[0];
  return best !== undefined && best.distance <= Math.max(2, Math.floor(unknown.length / 3)) ? best.name : undefined;
}
