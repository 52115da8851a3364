import { mkdirSync } from 'node:fs';
import { enableCompileCache, flushCompileCache } from 'node:module';
import { join } from 'node:path';

/**
 * V8's compiled code for Layover's modules, kept on disk between starts (Node's compile cache): an
 * empty start spent about 0.6 of its 1.1 s loading and compiling some 1,000 modules. It lives in the
 * data directory, which holds the CA's key and so is writable by Layover's user alone: code read back
 * from a cache that someone else could write would run as Layover. A start never fails for it: no
 * data directory yet (the first start makes it), a read-only one or a full disk mean no cache.
 * NODE_COMPILE_CACHE (a directory of the operator's) and NODE_DISABLE_COMPILE_CACHE keep their meaning.
 */
export function useCompileCache(dataDir: string): void {
  const directory = join(dataDir, 'compile-cache');
  try {
    // Not recursive: the data directory itself is made by the start, with its own mode.
    mkdirSync(directory, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  try {
    enableCompileCache(directory);
  } catch {
    // Unsupported here: start without it.
  }
}

/** Writes what was compiled since start (Node writes it at a normal exit, never after a kill). */
export function saveCompileCache(): void {
  try {
    flushCompileCache();
  } catch {
    // A full disk or a read-only data directory: the next start compiles again.
  }
}
