import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isCode } from './durable-files.js';

/** Lock files this process holds: a second `BlobCache.open()` of one directory in one process must fail too. */
const held = new Set<string>();

/** Thrown when another live process (or another open cache in this one) owns the directory. */
export class DirectoryLockedError extends Error {
  readonly owner: number;
  constructor(message: string, owner: number) {
    super(message);
    this.name = 'DirectoryLockedError';
    this.owner = owner;
  }
}

/**
 * An exclusive lock on a cache directory: a file holding the owner's pid. Two Layover processes on one
 * data directory would evict and reconcile each other's files, so the second one must refuse to start.
 * A lock left by a dead process (kill -9, power loss) is taken over; so is one naming our own pid, which
 * happens when a container restarts and Layover is pid 1 again.
 */
export class DirectoryLock {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  static async acquire(lockFile: string): Promise<DirectoryLock> {
    const path = resolve(lockFile);
    if (held.has(path)) {
      throw new DirectoryLockedError(`the cache directory ${dirname(path)} is already open in this process (lock file ${path})`, process.pid);
    }
    // Reserved synchronously, so two concurrent open() calls in one process cannot both pass the check.
    held.add(path);
    try {
      await takeOver(path);
      return new DirectoryLock(path);
    } catch (error) {
      held.delete(path);
      throw error;
    }
  }

  async release(): Promise<void> {
    if (!held.delete(this.path)) return;
    // Only remove a file that still names us: never someone else's lock.
    if ((await readOwner(this.path)) === process.pid) await rm(this.path, { force: true });
  }
}

async function takeOver(path: string): Promise<void> {
  // The pid is written to a private file first and then linked into place, so the lock file is never
  // seen empty: an empty file would look stale to a second process starting at the same moment.
  const staging = `${path}.${process.pid}.${Date.now()}`;
  await writeFile(staging, `${process.pid}\n`, { flush: true });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(staging, path);
        return;
      } catch (error) {
        if (!isCode(error, 'EEXIST')) throw new Error(`cannot create the cache lock file ${path}`, { cause: error });
      }
      const owner = await readOwner(path);
      if (owner !== null && owner !== process.pid && isAlive(owner)) {
        throw new DirectoryLockedError(
          `the cache directory ${dirname(path)} is in use by another Layover (process ${owner}, lock file ${path}): ` +
            'two Layover processes cannot share one data directory; stop the other one or give this one its own LAYOVER_DATA_DIR',
          owner,
        );
      }
      await rm(path, { force: true });
    }
    throw new Error(`cannot take the cache lock file ${path}: it keeps reappearing`);
  } finally {
    await rm(staging, { force: true });
  }
}

async function readOwner(path: string): Promise<number | null> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return isCode(error, 'EPERM');
  }
}
