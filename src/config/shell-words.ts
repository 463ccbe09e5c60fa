/**
 * A command line split into words as a POSIX shell would split it, without running anything (pure): blanks
 * separate words; '…' is literal; "…" keeps blanks and takes \ before " \ $ ` and a newline; a \ outside quotes
 * takes the next character (a \ before a newline joins the lines); a word starting with # starts a comment that
 * runs to the end of its line. Nothing is expanded ($VAR, ~, globs stay as written).
 */

export class ShellWordsError extends Error {}

export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const end = () => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  while (i < line.length) {
    const ch = line[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      end();
      i++;
    } else if (ch === '#' && !inWord) {
      while (i < line.length && line[i] !== '\n') i++;
    } else if (ch === '\\') {
      if (line[i + 1] === '\n') {
        i += 2;
      } else if (i + 1 < line.length) {
        word += line[i + 1];
        inWord = true;
        i += 2;
      } else {
        i++;
      }
    } else if (ch === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new ShellWordsError(`unterminated ' quote in: ${line.slice(i, i + 40)}`);
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (ch === '"') {
      i++;
      inWord = true;
      for (;;) {
        if (i >= line.length) throw new ShellWordsError(`unterminated " quote in: ${line.slice(0, 60)}`);
        const c = line[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1]!)) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i += 2;
        } else {
          word += c;
          i++;
        }
      }
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  end();
  return words;
}
