/**
 * Tells the cgroup identities (./cgroup-identities.ts) at once when a cgroup is created or removed below the traced
 * ones, so they scan then instead of walking the tree on a short timer: an inotify watch (fs.watch) on every
 * traced cgroup directory. cgroupfs reports a child directory made or removed (mkdir, rmdir: a pod or container
 * coming or going) as a `rename` event of the parent; its `change` events (cgroup.events and other files written
 * by the kernel) say nothing about the tree and are ignored.
 *
 * A walk of 403 cgroups costs ~4.8 ms; every 2 s on a node of 100 pods that was ~0.0024 cores, most of the ~0.003
 * an idle collector may cost (issue 7). With the watch, the periodic walk (collector.cgroupScanMs) is only a
 * safety net.
 *
 * The set of watched directories follows each scan (follow()). A directory made after a scan and before its watch
 * was added would go unseen: follow() says when it added watches, and the identities then scan once more, which
 * finds anything made in between.
 */
import fs from 'node:fs';
import type { Logger } from '../../common/logger.js';

export class CgroupTreeWatch {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private warned = false;

  /** `changed`: a cgroup was created or removed below a watched directory (called once per event). */
  constructor(
    private readonly changed: () => void,
    private readonly logger: Logger,
  ) {}

  /**
   * Watches exactly `directories` (full paths) from now on; returns whether any watch was added. A directory that
   * cannot be watched (gone already, or the inotify limit reached) is left to the periodic scan, said once.
   */
  follow(directories: Iterable<string>): boolean {
    const wanted = new Set(directories);
    for (const [directory, watcher] of this.watchers) {
      if (wanted.has(directory)) continue;
      watcher.close();
      this.watchers.delete(directory);
    }
    let added = false;
    for (const directory of wanted) {
      if (this.watchers.has(directory)) continue;
      const watcher = this.watch(directory);
      if (watcher === undefined) continue;
      this.watchers.set(directory, watcher);
      added = true;
    }
    return added;
  }

  get watched(): number {
    return this.watchers.size;
  }

  close(): void {
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private watch(directory: string): fs.FSWatcher | undefined {
    try {
      // Not persistent: a watch never keeps a stopping collector alive.
      const watcher = fs.watch(directory, { persistent: false }, (event) => {
        if (event === 'rename') this.changed();
      });
      // The directory itself went away (its parent's watch reports that): the next follow() drops this watch.
      watcher.on('error', () => this.changed());
      return watcher;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (!this.warned) {
        this.logger.warn(
          { err: error, directory, watched: this.watchers.size },
          'cannot watch a traced cgroup for new and removed cgroups (ENOSPC: raise the sysctl fs.inotify.max_user_watches); ' +
            'its changes are seen by the periodic scan (collector.cgroupScanMs) or by their first flow',
        );
        this.warned = true;
      }
      return undefined;
    }
  }
}
