/**
 * Says at once when a cgroup is created or removed below watched cgroup directories, so that a role walks the tree
 * then instead of on a short timer: an inotify watch (fs.watch) on every directory. cgroupfs reports a child
 * directory made or removed (mkdir, rmdir: a pod or container coming or going) as a `rename` event of the parent;
 * its `change` events (cgroup.events and other files the kernel writes) say nothing about the tree and are ignored.
 *
 * The collector (its cgroup identities) and the enforcer (its pods' containers) both walked their cgroups every
 * 2 s: a walk costs ~12 µs per cgroup (403 cgroups: 4.8 ms), ~0.0024 cores on a node of 100 pods, most of the
 * ~0.003 an idle collector may cost (issue 7); and a container started up to 2 s before the enforcer knew it.
 * With the watch, their periodic walks are only a safety net.
 *
 * The set of watched directories follows each walk (follow()). A directory made after a walk and before its watch
 * was added would go unseen: adding a watch calls for one more walk, which finds anything made in between.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../common/logger.js';
import { cgroup2Root } from './preflight.js';

/**
 * Events within this long make one call: a pod's slice and its containers (made within microseconds, possibly
 * before a walk finishes) make one walk, and while pods churn the walks stay ten a second at most (a walk of 400
 * cgroups takes ~5 ms).
 */
export const COALESCE_MS = 100;

export class CgroupTreeWatch {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private readonly root = cgroup2Root();
  private pending: NodeJS.Timeout | undefined;
  private warned = false;

  /**
   * `changed`: a cgroup was created or removed below a watched directory, or a watch was added (a walk is due);
   * called once per COALESCE_MS at most. `walkSetting`: the setting of the caller's periodic walk, named when a
   * watch is refused.
   */
  constructor(
    private readonly changed: () => void,
    private readonly walkSetting: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Watches exactly the cgroups a walk found (paths below the cgroup v2 mount, as Cgroup.descendants gives them)
   * from now on. A watch added now may have missed a cgroup made since the walk passed it, so adding one calls for
   * another walk, which finds it. A directory that cannot be watched (gone already, or the inotify limit reached)
   * is left to the periodic walk, said once.
   */
  follow(cgroups: Iterable<string>): void {
    const wanted = new Set([...cgroups].map((below) => path.join(this.root, below)));
    for (const [directory, watcher] of this.watchers) {
      if (wanted.has(directory)) continue;
      watcher.close();
      this.watchers.delete(directory);
    }
    for (const directory of wanted) {
      if (this.watchers.has(directory)) continue;
      const watcher = this.watch(directory);
      if (watcher === undefined) continue;
      this.watchers.set(directory, watcher);
      this.signal();
    }
  }

  close(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private signal(): void {
    this.pending ??= setTimeout(() => {
      this.pending = undefined;
      this.changed();
    }, COALESCE_MS).unref();
  }

  private watch(directory: string): fs.FSWatcher | undefined {
    try {
      // Not persistent: a watch never keeps a stopping process alive.
      const watcher = fs.watch(directory, { persistent: false }, (event) => {
        if (event === 'rename') this.signal();
      });
      // The directory itself went away (its parent's watch reports that): the next follow() drops this watch.
      watcher.on('error', () => this.signal());
      return watcher;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (!this.warned) {
        this.logger.warn(
          { err: error, directory, watched: this.watchers.size },
          `cannot watch a cgroup for new and removed cgroups (ENOSPC: raise the sysctl fs.inotify.max_user_watches); ` +
            `until then its changes are seen by the periodic walk (${this.walkSetting}) only`,
        );
        this.warned = true;
      }
      return undefined;
    }
  }
}
