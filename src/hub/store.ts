/**
 * The download cache on disk, in huggingface_hub's layout so that both read each other's files:
 *
 *   <root>/models--<owner>--<repo>/
 *     blobs/<etag>                 the content (etag = the sha256 for LFS files, the git blob id otherwise)
 *     blobs/<etag>.incomplete      a download under way or interrupted (resumed with a Range request)
 *     snapshots/<commit>/<path>    relative symlinks to ../../blobs/<etag>
 *     refs/main                    the commit `main` pointed to when last downloaded
 *
 * `root` is ours (`<cacheDir>/hub`): downloads go there and only there is anything ever deleted. Other Hub caches
 * (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`) are searched, listed and used, never changed
 * (except that using a model touches its snapshot link's time).
 *
 * "Last used" is the modification time of a model's snapshot link, set whenever the proxy uses the model. Which
 * file a partial download belongs to is kept in `<stateDir>/partial/<repo folder>/<etag>.json` (written when a
 * download starts, removed when it ends) so that `models` can name it.
 */
import {
  existsSync, lstatSync, lutimesSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, rmdirSync,
  statSync, symlinkSync, unlinkSync, writeFileSync, linkSync, copyFileSync,
} from 'node:fs';
import path from 'node:path';
import { chooseVariant, isProjector, splitSet, type VariantChoice } from './variants.js';

export function repoFolder(repo: string): string {
  return `models--${repo.replace('/', '--')}`;
}

/** `models--owner--repo` -> `owner/repo` (Hub names cannot hold `--`), or undefined for other folders. */
export function repoFromFolder(folder: string): string | undefined {
  const m = /^models--(.+?)--(.+)$/.exec(folder);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** A snapshot's files (paths relative to it, `/`-separated); links whose blob is gone are left out. */
export function snapshotFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const full = path.join(dir, entry.name);
    const st = statSync(full, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out.push(...snapshotFiles(full, rel));
    else if (st.isFile() && !entry.name.includes('.tmp-')) out.push(rel);
  }
  return out;
}

function readRef(repoDir: string, revision: string): string | undefined {
  try {
    return readFileSync(path.join(repoDir, 'refs', revision), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A model found on disk. */
export interface LocalModel {
  /** The Hub cache folder it is in. */
  cacheRoot: string;
  commit: string;
  snapshot: string;
  choice: VariantChoice;
}

export interface CacheEntry {
  repo: string;
  /** Path in the repo; for a partial download whose file is not known, `<etag>.incomplete`. */
  file: string;
  /** The commit (snapshot) it belongs to; undefined for partial downloads of unknown origin. */
  revision?: string;
  /** The snapshot path (what llama-server is given), or the partial blob. */
  path: string;
  blob: string;
  /** Bytes on disk (for a partial download: so far). */
  sizeBytes: number;
  /** For partial downloads, the full size when known. */
  expectedBytes?: number;
  lastUsed: Date;
  partial: boolean;
  /** In our cache (`<cacheDir>/hub`, managed and evicted by the proxy) or in another Hub tool's cache. */
  ours: boolean;
  cacheRoot: string;
  /** A GGUF model file (or the first part of a split one), a projector, or something else. */
  kind: 'model' | 'part' | 'mmproj' | 'other';
}

export interface PartialInfo {
  repo: string;
  file: string;
  commit: string;
  size: number;
}

/** One evictable unit: a model (all parts) in a snapshot, or a partial download. */
export interface CacheGroup {
  repo: string;
  revision?: string;
  /** The model's first part, or the partial's file. */
  file: string;
  entries: CacheEntry[];
  bytes: number;
  lastUsed: Date;
  partial: boolean;
}

export class HubStore {
  /**
   * @param root our Hub cache folder (downloads go here)
   * @param searchDirs every Hub cache to look in, ours first
   * @param stateDir where partial-download notes are kept
   */
  constructor(
    readonly root: string,
    readonly searchDirs: readonly string[],
    readonly stateDir: string,
  ) {}

  repoDir(repo: string, root = this.root): string {
    return path.join(root, repoFolder(repo));
  }

  blobPath(repo: string, etag: string): string {
    return path.join(this.repoDir(repo), 'blobs', etag);
  }

  incompletePath(repo: string, etag: string): string {
    return `${this.blobPath(repo, etag)}.incomplete`;
  }

  snapshotPath(repo: string, commit: string, file: string, root = this.root): string {
    return path.join(this.repoDir(repo, root), 'snapshots', commit, ...file.split('/'));
  }

  lockPath(repo: string, etag: string): string {
    return path.join(this.stateDir, 'locks', repoFolder(repo), `${etag}.lock`);
  }

  private partialNote(repo: string, etag: string): string {
    return path.join(this.stateDir, 'partial', repoFolder(repo), `${etag}.json`);
  }

  notePartial(repo: string, etag: string, info: PartialInfo): void {
    const file = this.partialNote(repo, etag);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(info));
  }

  clearPartial(repo: string, etag: string): void {
    rmSync(this.partialNote(repo, etag), { force: true });
  }

  private readPartial(repo: string, etag: string): PartialInfo | undefined {
    try {
      return JSON.parse(readFileSync(this.partialNote(repo, etag), 'utf8')) as PartialInfo;
    } catch {
      return undefined;
    }
  }

  /** The size of a file, or -1 when it is missing. */
  static size(file: string): number {
    return statSync(file, { throwIfNoEntry: false })?.size ?? -1;
  }

  /**
   * Finds `variant` of `repo` on disk, in every cache: the snapshot `refs/<revision>` names first, then the
   * others, newest first. `explicit: false` allows the closest quantization (see hub-variants.ts). Also returns
   * the GGUF files seen, for messages.
   */
  findLocal(repo: string, variant: string, explicit: boolean, revision = 'main'): { found?: LocalModel; seen: string[] } {
    const seen = new Set<string>();
    for (const root of this.searchDirs) {
      const repoDir = this.repoDir(repo, root);
      const snapsDir = path.join(repoDir, 'snapshots');
      let revs: string[];
      try {
        revs = readdirSync(snapsDir);
      } catch {
        continue;
      }
      const ref = readRef(repoDir, revision);
      const ordered = revs
        .map((rev) => ({ rev, first: rev === ref || rev === revision ? 0 : 1, mtime: statSync(path.join(snapsDir, rev), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
        .sort((a, b) => a.first - b.first || b.mtime - a.mtime);
      for (const { rev } of ordered) {
        const snapshot = path.join(snapsDir, rev);
        const files = snapshotFiles(snapshot).filter((f) => f.toLowerCase().endsWith('.gguf'));
        for (const f of files) seen.add(f);
        const outcome = chooseVariant(files, variant, explicit);
        if (outcome.ok) return { found: { cacheRoot: root, commit: rev, snapshot, choice: outcome.choice }, seen: [...seen].sort() };
      }
    }
    return { seen: [...seen].sort() };
  }

  /** Points snapshots/<commit>/<file> at the blob (a relative symlink; a hard link or copy where links fail). */
  linkSnapshot(repo: string, commit: string, file: string, etag: string): string {
    const link = this.snapshotPath(repo, commit, file);
    const blob = this.blobPath(repo, etag);
    mkdirSync(path.dirname(link), { recursive: true });
    const target = path.relative(path.dirname(link), blob);
    const current = lstatSync(link, { throwIfNoEntry: false });
    if (current?.isSymbolicLink() && readlinkSync(link) === target) return link;
    const tmp = `${link}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      symlinkSync(target, tmp);
    } catch {
      try {
        linkSync(blob, tmp);
      } catch {
        copyFileSync(blob, tmp);
      }
    }
    renameSync(tmp, link);
    return link;
  }

  writeRef(repo: string, revision: string, commit: string): void {
    if (revision === commit) return;
    const ref = path.join(this.repoDir(repo), 'refs', ...revision.split('/'));
    mkdirSync(path.dirname(ref), { recursive: true });
    const tmp = `${ref}.tmp-${process.pid}`;
    writeFileSync(tmp, commit);
    renameSync(tmp, ref);
  }

  /** Marks files (snapshot links) as used now: their link's time is "last used". */
  touch(files: readonly string[]): void {
    const now = new Date();
    for (const f of files) {
      try {
        lutimesSync(f, now, now);
      } catch {
        /* a read-only cache: last-used stays as it was */
      }
    }
  }

  /** Everything in the caches: one entry per snapshot file, plus partial downloads. */
  list(): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const root of this.searchDirs) {
      let folders: string[];
      try {
        folders = readdirSync(root);
      } catch {
        continue;
      }
      const ours = root === this.root;
      for (const folder of folders.sort()) {
        const repo = repoFromFolder(folder);
        if (!repo) continue;
        const repoDir = path.join(root, folder);
        let revs: string[] = [];
        try {
          revs = readdirSync(path.join(repoDir, 'snapshots'));
        } catch {
          /* no snapshots yet */
        }
        for (const rev of revs.sort()) {
          const snapshot = path.join(repoDir, 'snapshots', rev);
          for (const file of snapshotFiles(snapshot).sort()) {
            const full = path.join(snapshot, ...file.split('/'));
            let blob: string;
            let sizeBytes: number;
            let lastUsed: Date;
            try {
              blob = realpathSync(full);
              sizeBytes = statSync(blob).size;
              lastUsed = lstatSync(full).mtime;
            } catch {
              continue; // removed while listing
            }
            const gguf = file.toLowerCase().endsWith('.gguf');
            const split = splitSet(file);
            out.push({
              repo,
              file,
              revision: rev,
              path: full,
              blob,
              sizeBytes,
              lastUsed,
              partial: false,
              ours,
              cacheRoot: root,
              kind: !gguf ? 'other' : isProjector(file) ? 'mmproj' : split && split[0] !== file ? 'part' : 'model',
            });
          }
        }
        let blobs: string[] = [];
        try {
          blobs = readdirSync(path.join(repoDir, 'blobs'));
        } catch {
          /* none */
        }
        for (const name of blobs.filter((b) => b.endsWith('.incomplete')).sort()) {
          const blob = path.join(repoDir, 'blobs', name);
          const st = statSync(blob, { throwIfNoEntry: false });
          if (!st) continue;
          const etag = name.slice(0, -'.incomplete'.length);
          const note = ours ? this.readPartial(repo, etag) : undefined;
          out.push({
            repo,
            file: note?.file ?? name,
            ...(note ? { revision: note.commit, expectedBytes: note.size } : {}),
            path: blob,
            blob,
            sizeBytes: st.size,
            lastUsed: st.mtime,
            partial: true,
            ours,
            cacheRoot: root,
            kind: note && !isProjector(note.file) ? 'model' : 'other',
          });
        }
      }
    }
    return out;
  }

  /** Bytes of every blob (complete or not) in our cache. */
  totalBytes(): number {
    let total = 0;
    let folders: string[];
    try {
      folders = readdirSync(this.root);
    } catch {
      return 0;
    }
    for (const folder of folders) {
      if (!repoFromFolder(folder)) continue;
      const dir = path.join(this.root, folder, 'blobs');
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names) total += Math.max(0, HubStore.size(path.join(dir, n)));
    }
    return total;
  }

  /** Our cache as evictable units: each model (its parts) per snapshot, and each partial download. */
  groups(): CacheGroup[] {
    const entries = this.list().filter((e) => e.ours);
    const groups = new Map<string, CacheGroup>();
    for (const e of entries) {
      if (e.partial) {
        groups.set(`partial|${e.blob}`, { repo: e.repo, file: e.file, entries: [e], bytes: e.sizeBytes, lastUsed: e.lastUsed, partial: true });
        continue;
      }
      if (e.kind !== 'model' && e.kind !== 'part') continue;
      const first = splitSet(e.file)?.[0] ?? e.file;
      const key = `${e.repo}|${e.revision}|${first}`;
      const g = groups.get(key) ?? { repo: e.repo, revision: e.revision!, file: first, entries: [], bytes: 0, lastUsed: new Date(0), partial: false };
      g.entries.push(e);
      g.bytes += e.sizeBytes;
      if (e.lastUsed > g.lastUsed) g.lastUsed = e.lastUsed;
      groups.set(key, g);
    }
    return [...groups.values()];
  }

  /**
   * Deletes a unit from our cache: its snapshot links, the blobs no other link uses, a snapshot left with no
   * model (projector and other files go with it), a repo left with nothing. Returns the bytes freed.
   */
  remove(group: CacheGroup): number {
    let freed = 0;
    if (group.partial) {
      for (const e of group.entries) {
        freed += Math.max(0, HubStore.size(e.blob));
        rmSync(e.blob, { force: true });
        const etag = path.basename(e.blob).replace(/\.incomplete$/, '');
        this.clearPartial(group.repo, etag);
      }
      this.pruneRepo(group.repo);
      return freed;
    }
    const candidates = new Set<string>();
    for (const e of group.entries) {
      if (!e.path.startsWith(this.root + path.sep)) continue;
      rmSync(e.path, { force: true });
      candidates.add(e.blob);
    }
    const snapshot = path.join(this.repoDir(group.repo), 'snapshots', group.revision ?? '');
    if (group.revision && !snapshotFiles(snapshot).some((f) => f.toLowerCase().endsWith('.gguf') && !isProjector(f))) {
      for (const f of snapshotFiles(snapshot)) {
        const full = path.join(snapshot, ...f.split('/'));
        try {
          candidates.add(realpathSync(full));
        } catch {
          /* gone */
        }
      }
      rmSync(snapshot, { recursive: true, force: true });
    }
    const used = this.referencedBlobs(group.repo);
    for (const blob of candidates) {
      if (used.has(blob) || !blob.startsWith(this.root + path.sep)) continue;
      freed += Math.max(0, HubStore.size(blob));
      rmSync(blob, { force: true });
    }
    this.pruneRepo(group.repo);
    return freed;
  }

  private referencedBlobs(repo: string): Set<string> {
    const used = new Set<string>();
    const snaps = path.join(this.repoDir(repo), 'snapshots');
    let revs: string[] = [];
    try {
      revs = readdirSync(snaps);
    } catch {
      return used;
    }
    for (const rev of revs) {
      for (const f of snapshotFiles(path.join(snaps, rev))) {
        try {
          used.add(realpathSync(path.join(snaps, rev, ...f.split('/'))));
        } catch {
          /* gone */
        }
      }
    }
    return used;
  }

  /** Removes a repo folder of ours that holds no snapshot and no blob any more. */
  private pruneRepo(repo: string): void {
    const dir = this.repoDir(repo);
    const snaps = path.join(dir, 'snapshots');
    const blobs = path.join(dir, 'blobs');
    const empty = (d: string) => !existsSync(d) || readdirSync(d).length === 0;
    if (empty(snaps) && empty(blobs)) {
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    try {
      for (const rev of readdirSync(snaps)) {
        const d = path.join(snaps, rev);
        if (readdirSync(d).length === 0) rmdirSync(d);
      }
    } catch {
      /* nothing to tidy */
    }
  }

  /** Paths and their resolved targets, for matching "in use" sets given as snapshot or blob paths. */
  static normalizePaths(paths: Iterable<string>): Set<string> {
    const out = new Set<string>();
    for (const p of paths) {
      out.add(path.resolve(p));
      try {
        out.add(realpathSync(p));
      } catch {
        /* not on disk */
      }
    }
    return out;
  }

  /** Removes a link that points nowhere (used when a download fails after a stale link was left). */
  static unlinkQuiet(file: string): void {
    try {
      unlinkSync(file);
    } catch {
      /* already gone */
    }
  }
}
