/**
 * Sees every way a rules folder gets written: in-place edits, editors' atomic saves (a new file
 * renamed over the old one: `sed -i`, vim, most IDEs), new, removed and renamed sub-folders, and
 * the folder itself replaced by a rename or a symlink swap (a deployment putting a new version in
 * place). Node's recursive fs.watch on Linux (Node 20) follows files, not names: once a file is
 * replaced its later edits are never reported, and a renamed sub-folder goes unwatched. So each
 * folder is watched on its own (inotify on a folder reports what happens to every name in it), the
 * root's parent is watched for the root's own name, and the tree is walked again after each change
 * to watch what is new and stop watching what is gone.
 */
import { statSync, watch as watchFs, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isSkippedRuleEntry } from './load.js';

/** Folders watched at most; the loader refuses more rule files than this anyway. */
const MAX_FOLDERS = 2000;

interface WatchedFolder {
  watcher: FSWatcher;
  /** The folder's inode: a folder renamed away and another renamed in its place is a new one. */
  inode: number;
}

export class RulesFolderWatcher {
  private readonly folders = new Map<string, WatchedFolder>();
  private parentWatcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private closed = false;

  /** `onChange` is called once per burst of changes, `debounceMs` after the last one. */
  constructor(
    private readonly root: string,
    private readonly onChange: () => void,
    private readonly log?: Logger,
    private readonly debounceMs = 250,
  ) {}

  /** Watches the root at once (before it returns); resolves once every folder below it is watched too. */
  async start(): Promise<void> {
    try {
      this.watchFolder(this.root, statSync(this.root).ino);
    } catch {
      // Not there (yet): the parent's watcher sees it appear.
    }
    const parent = path.dirname(path.resolve(this.root));
    const name = path.basename(path.resolve(this.root));
    try {
      this.parentWatcher = watchFs(parent, { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) this.changed();
      });
      this.parentWatcher.on('error', (error) => this.log?.warn({ rules_dir: this.root, err: error }, 'watching the rules folder\'s parent failed; a replaced rules folder is seen at the next change inside it'));
    } catch (error) {
      this.log?.warn({ rules_dir: this.root, err: error }, 'cannot watch the rules folder\'s parent; a replaced rules folder is seen at the next change inside it');
    }
    await this.sync();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.parentWatcher?.close();
    for (const folder of this.folders.values()) folder.watcher.close();
    this.folders.clear();
  }

  /** The folders watched now (for tests and diagnostics). */
  watchedFolders(): string[] {
    return [...this.folders.keys()].sort();
  }

  private changed(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.sync().then(() => {
        if (!this.closed) this.onChange();
      });
    }, this.debounceMs);
  }

  /** Watches every folder of the tree as it is now; one walk at a time. */
  private sync(): Promise<void> {
    const previous = this.syncing ?? Promise.resolve();
    const next = previous.then(() => this.walkAndWatch());
    this.syncing = next.finally(() => {
      if (this.syncing === next) this.syncing = null;
    });
    return next;
  }

  private async walkAndWatch(): Promise<void> {
    if (this.closed) return;
    const present = new Map<string, number>();
    const walk = async (folder: string): Promise<void> => {
      if (present.size >= MAX_FOLDERS) return;
      let info;
      try {
        info = await stat(folder);
      } catch {
        return; // gone between the listing and now (renamed away, deleted): its parent's watcher saw it
      }
      if (!info.isDirectory()) return;
      present.set(folder, info.ino);
      let entries;
      try {
        entries = await readdir(folder, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        if (entry.isDirectory() && !isSkippedRuleEntry(entry.name)) await walk(path.join(folder, entry.name));
      }
    };
    await walk(this.root);
    if (this.closed) return;
    for (const [folder, watched] of this.folders) {
      if (present.get(folder) === watched.inode) continue;
      watched.watcher.close();
      this.folders.delete(folder);
    }
    for (const [folder, inode] of present) {
      if (!this.folders.has(folder)) this.watchFolder(folder, inode);
    }
  }

  private watchFolder(folder: string, inode: number): void {
    try {
      const watcher = watchFs(folder, { persistent: false }, () => this.changed());
      // A watched folder that disappears reports an error on some systems: walk again.
      watcher.on('error', () => this.changed());
      this.folders.set(folder, { watcher, inode });
    } catch (error) {
      this.log?.warn({ rules_dir: this.root, folder, err: error }, 'cannot watch a rules folder; use POST /-/reload after changing it');
    }
  }
}
