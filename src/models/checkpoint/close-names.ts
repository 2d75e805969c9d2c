/** Edit distance with a cut-off: anything over `limit` reads as `limit + 1`, so a long list stays cheap. */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const value = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      current.push(value);
      best = Math.min(best, value);
    }
    if (best > limit) return limit + 1;
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * A hint for a name that is not there: the up-to-three nearest by edit distance, as ` (did you mean 'a',
 * 'b'?)`, or '' when none is near. A typo'd tensor name usually differs by a few characters.
 */
export function closeNamesHint(name: string, candidates: readonly string[]): string {
  const limit = Math.max(2, Math.floor(name.length / 5));
  const near = candidates
    .map((candidate) => ({ candidate, d: distance(name, candidate, limit) }))
    .filter((c) => c.d <= limit)
    .sort((x, y) => x.d - y.d)
    .slice(0, 3);
  return near.length === 0 ? '' : ` (did you mean ${near.map((c) => `'${c.candidate}'`).join(', ')}?)`;
}
