/** Picking one answer among samples (pure). */

/** Text used to compare answers: trimmed, whitespace runs collapsed. */
export const normalize = (text) => text.trim().replace(/\s+/g, ' ');

/**
 * @param {string[]} texts the answers
 * @param {'most-common' | 'longest'} pick
 * @returns {{ index: number, votes: number, distinct: number }} the chosen answer's index, how many samples gave
 *   it (normalized), and how many distinct answers there were
 */
export function chooseAnswer(texts, pick = 'most-common') {
  const counts = new Map();
  for (const t of texts) counts.set(normalize(t), (counts.get(normalize(t)) ?? 0) + 1);
  let best = -1;
  for (let i = 0; i < texts.length; i++) {
    if (best < 0) {
      best = i;
      continue;
    }
    const a = normalize(texts[i]);
    const b = normalize(texts[best]);
    const byVotes = (counts.get(a) ?? 0) - (counts.get(b) ?? 0);
    const byLength = a.length - b.length;
    if (pick === 'longest' ? byLength > 0 : byVotes > 0 || (byVotes === 0 && byLength > 0)) best = i;
  }
  return { index: best, votes: best < 0 ? 0 : counts.get(normalize(texts[best])), distinct: counts.size };
}
