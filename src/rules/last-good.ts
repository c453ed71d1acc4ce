/**
 * The last rule set that loaded, kept in the data folder, so that a start with broken rule files
 * (a bad deploy, a typo saved under systemd or Docker) runs on the rules that worked instead of
 * crash-looping while the shippers' buffers fill up. Only a data folder that never saw a good rule
 * set refuses to start.
 *
 * Layout: `<data>/rules-last-good/<hash>/...` holds the files exactly as they were loaded (their
 * paths relative to the rules folder, so the copy has the same hash), and `current.json` names
 * the copy in use. Each is written to a temporary name and renamed, so a crash mid-save leaves
 * the previous copy in force.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** One loaded rule file: its path relative to the rules folder and its text. */
export interface RuleSource {
  path: string;
  text: string;
}

export interface LastGoodCopy {
  /** Folder holding the copy: load it like any rules folder. */
  dir: string;
  hash: string;
  saved_at: string;
  /** The rules folder it was copied from. */
  source_dir: string;
}

const POINTER = 'current.json';

/** Where the last good rule set is kept: the data folder (LastGoodRules) or the store every node shares (SharedLastGoodRules). */
export interface LastGoodKeeper {
  /** The local folder its copies are loaded from. */
  readonly root: string;
  /** The copy in force, or null when no rule set ever loaded. */
  find(): Promise<LastGoodCopy | null>;
  /** Keeps these files as the last good rule set. */
  save(hash: string, sources: readonly RuleSource[], sourceDir: string): Promise<void>;
}

export class LastGoodRules implements LastGoodKeeper {
  private savedHash: string | null | undefined;

  constructor(readonly root: string) {}

  /** The copy in force, or null when no rule set ever loaded with this data folder. */
  async find(): Promise<LastGoodCopy | null> {
    let pointer: Omit<LastGoodCopy, 'dir'>;
    try {
      pointer = JSON.parse(await readFile(path.join(this.root, POINTER), 'utf8')) as Omit<LastGoodCopy, 'dir'>;
    } catch {
      return null;
    }
    if (typeof pointer.hash !== 'string' || !/^[0-9a-f]{16}$/.test(pointer.hash)) return null;
    return { dir: path.join(this.root, pointer.hash), hash: pointer.hash, saved_at: String(pointer.saved_at), source_dir: String(pointer.source_dir) };
  }

  /** Keeps these files as the last good rule set (nothing to do when it already is). */
  async save(hash: string, sources: readonly RuleSource[], sourceDir: string): Promise<void> {
    if (this.savedHash === undefined) this.savedHash = (await this.find())?.hash ?? null;
    if (this.savedHash === hash) return;
    await mkdir(this.root, { recursive: true });
    const staging = path.join(this.root, `.${hash}.${process.pid}.tmp`);
    await rm(staging, { recursive: true, force: true });
    for (const source of sources) {
      const target = path.join(staging, source.path);
      // Paths come from listing the rules folder; a path that climbs out of it is not one of those.
      if (!target.startsWith(staging + path.sep)) throw new Error(`refusing to keep ${source.path}: outside the rules folder`);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, source.text);
    }
    const finalDir = path.join(this.root, hash);
    await rm(finalDir, { recursive: true, force: true });
    await rename(staging, finalDir);
    const pointer = path.join(this.root, `.${POINTER}.${process.pid}.tmp`);
    await writeFile(pointer, JSON.stringify({ hash, saved_at: new Date().toISOString(), source_dir: path.resolve(sourceDir) }));
    await rename(pointer, path.join(this.root, POINTER));
    this.savedHash = hash;
    for (const entry of await readdir(this.root)) {
      if (entry !== hash && entry !== POINTER && !entry.startsWith('.')) await rm(path.join(this.root, entry), { recursive: true, force: true });
    }
  }
}
