/**
 * One anchored regex for a grouper's header layouts: most lines are no header, and one test of
 * `^(?:a|b|…)` rejects them where one test per layout would run a regex each. Only patterns that
 * are anchored as a whole (`^` first, no top-level `|`) and have no flags can join; the others are
 * tested on their own.
 */

/** True when `source` starts with `^` and has no `|` outside groups and classes. */
function anchoredAsAWhole(source: string): boolean {
  if (!source.startsWith('^')) return false;
  let depth = 0;
  let inClass = false;
  for (let index = 1; index < source.length; index++) {
    const char = source[index];
    if (char === '\\') {
      index++;
    } else if (inClass) {
      if (char === ']') inClass = false;
    } else if (char === '[') {
      inClass = true;
    } else if (char === '(') {
      depth++;
    } else if (char === ')') {
      depth--;
    } else if (char === '|' && depth === 0) {
      return false;
    }
  }
  return true;
}

export interface HeaderPrefilter {
  /** Matches every line any of `joined` matches (and maybe more): null when none could join. */
  union: RegExp | null;
  /** Patterns that could not join and are always tested. */
  alone: readonly RegExp[];
}

export function headerPrefilter(patterns: readonly RegExp[]): HeaderPrefilter {
  const joined: string[] = [];
  const alone: RegExp[] = [];
  for (const pattern of patterns) {
    if (pattern.flags === '' && anchoredAsAWhole(pattern.source)) joined.push(`(?:${pattern.source.slice(1)})`);
    else alone.push(pattern);
  }
  if (joined.length < 2) return { union: null, alone: patterns };
  try {
    return { union: new RegExp(`^(?:${joined.join('|')})`), alone };
  } catch {
    // Two patterns naming a capture group alike cannot share one regex: test each on its own.
    return { union: null, alone: patterns };
  }
}
