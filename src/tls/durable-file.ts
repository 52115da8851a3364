import { randomBytes } from 'node:crypto';
import { link, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Errors from `link` on file systems without hard links, where we fall back to rename. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Writes `data` to `path` so that a crash leaves either no file or the whole file:
 * temp file (created with `mode`, then chmod so the umask cannot matter), fsync, then
 * publish, then fsync the directory so the new name itself survives a power cut.
 *
 * Publishing uses link() rather than rename() because link never replaces an existing
 * file: when two processes create a CA in one shared directory at once, the first key
 * wins instead of the two interleaving into a key from one and a certificate from the
 * other. Returns false when `path` already existed (someone else won).
 */
export async function writeFileDurably(path: string, data: string, mode: number): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    const published = await publish(temp, path);
    await syncDirectory(dirname(path));
    return published;
  } finally {
    await rm(temp, { force: true });
  }
}

async function publish(temp: string, path: string): Promise<boolean> {
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === undefined || !NO_HARD_LINKS.has(code)) throw err;
    await rename(temp, path);
    return true;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
