/**
 * `serve --watch`: reloads when the config file changes. The file's folder is watched, not the file: editors save
 * by writing a new file and renaming it over the old one, which a watch on the old file's inode would miss. Bursts
 * of events (one save is often several) are folded into one reload after `debounceMs` of quiet.
 */
import { watch } from 'node:fs';
import path from 'node:path';

export function watchConfigFile(file: string, onChange: () => void, debounceMs = 300): () => void {
  const name = path.basename(file);
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(path.dirname(file), { persistent: false }, (_event, changed) => {
    if (changed !== null && changed !== name) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  // A folder that goes away ends the watch; the proxy keeps running on the config it has.
  watcher.on('error', () => watcher.close());
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
