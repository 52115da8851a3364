import { BlobStoreUnavailableError } from '../cache/blob-store.js';
import { CacheIndexUnavailableError } from '../cache/cache-index.js';
import { DirectoryLockedError } from '../cache/directory-lock.js';
import { ConfigError } from '../config/config-error.js';

type SystemError = NodeJS.ErrnoException & { address?: string; port?: number };

const isSystemError = (e: Error): e is SystemError => typeof (e as SystemError).code === 'string' && /^E[A-Z0-9]+$/.test((e as SystemError).code!);

function listenerLine(e: SystemError): string {
  const where = e.address === undefined ? 'the configured address' : `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the address is in use (another program, or another Layover, listens there)`;
    case 'EACCES':
      // Below 1024 the usual reason is a missing privilege; elsewhere it is something else (a security module).
      return `cannot listen on ${where}: permission denied${e.port !== undefined && e.port > 0 && e.port < 1024 ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: no interface of this host has that address`;
    default:
      return `cannot listen on ${where}: ${e.message}`;
  }
}

function fileLine(e: SystemError): string {
  const unwritable = e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS';
  // Node's message reads "EACCES: permission denied, mkdir '/srv/layover/cache'": keep the words, name the path once.
  const reason = /^E[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message;
  const hint = unwritable ? `; the data directory (LAYOVER_DATA_DIR) and the CA directory must be writable by the user Layover runs as (uid ${process.getuid?.()})` : '';
  return `cannot ${e.syscall ?? 'use'} ${e.path}: ${reason} (${e.code})${hint}`;
}

/**
 * The line a failed start prints: the real cause in one line (a held lock, an unwritable directory, an
 * address in use, a blob store that cannot be reached), found along the error's causes. null for anything else: a bug, whose stack helps.
 */
export function startupErrorLine(error: unknown): string | null {
  const context: string[] = [];
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof ConfigError || e instanceof DirectoryLockedError || e instanceof BlobStoreUnavailableError || e instanceof CacheIndexUnavailableError) return [...context, e.message].join(': ');
    if (isSystemError(e)) {
      if (e.syscall === 'listen' || e.syscall === 'bind') return [...context, listenerLine(e)].join(': ');
      if (e.path !== undefined) return [...context, fileLine(e)].join(': ');
      return [...context, e.message].join(': ');
    }
    context.push(e.message);
  }
  return null;
}
