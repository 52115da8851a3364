import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { BlobCache } from '../cache/blob-cache.js';
import { CacheScopeError, scopeFromText, scopeName, type CacheScope } from '../cache/cache-scope.js';
import { ConfigError } from '../config/config-error.js';
import type { LayoverConfig } from '../config/layover-config.js';
import { parseSize } from '../config/units.js';
import { adminEndpoint, callAdmin, type AdminEndpoint } from './admin-client.js';
import { blobsText, pinText, pruneText, purgeText, statsText, verifyText, type BlobRow, type PurgeAnswer } from './cache-output.js';

export const CACHE_SUBCOMMANDS = ['stats', 'ls', 'prune', 'verify', 'purge', 'pin', 'unpin'] as const;
export type CacheSubcommand = (typeof CACHE_SUBCOMMANDS)[number];

const SCOPED: readonly CacheSubcommand[] = ['purge', 'pin', 'unpin'];

export interface CacheCommandOptions {
  maxSize: string | undefined;
  /** purge: remove blobs shared with images outside the scope too. */
  force?: boolean;
  /** Lines for a person; default: when stdout is a terminal. */
  human?: boolean;
}

/** What a sub-command asks for, checked before anything is opened or called. */
interface CacheJob {
  subcommand: CacheSubcommand;
  scopes: CacheScope[];
  maxSize: number | undefined;
  force: boolean;
  human: boolean;
}

/**
 * `layover cache stats|ls|prune|verify|purge|pin|unpin`. While Layover runs (its admin API answers at
 * ADMIN_LISTEN, else the HTTP listener, with the token of ADMIN_TOKEN_FILE) through the admin API;
 * otherwise on the data dir and the configured blob store (BLOB_STORE), which a running Layover locks.
 * On a shared cache (CACHE_INDEX redis:// or postgres://, BLOB_STORE s3://) the files can be used beside
 * live replicas: the data dir then holds nothing of the cache, so they spool in a temporary directory of
 * their own; `prune` evicts for the fleet under the eviction lease, and what `prune`, `verify` and `purge`
 * remove is announced to the replicas through the index's change feed, as their own removals are.
 */
export async function cacheCommand(config: LayoverConfig, subcommand: CacheSubcommand, args: readonly string[], options: CacheCommandOptions): Promise<string> {
  const job = cacheJob(subcommand, args, options);
  const endpoint = await adminEndpoint(config);
  const answered = endpoint ? await viaAdminApi(endpoint, job) : null;
  if (answered !== null) return answered;
  const logger = pino({ level: 'warn' }, pino.destination(2)) as FastifyBaseLogger;
  const shared = config.cacheIndex.kind !== 'sqlite';
  const spool = shared ? await mkdtemp(join(tmpdir(), 'layover-cache-command-')) : undefined;
  try {
    return await runOn(spool ?? config.dataDir, config, job, logger);
  } finally {
    if (spool) await rm(spool, { recursive: true, force: true });
  }
}

function cacheJob(subcommand: CacheSubcommand, args: readonly string[], options: CacheCommandOptions): CacheJob {
  const scoped = SCOPED.includes(subcommand);
  if (!scoped && args.length > 0) throw new ConfigError(`cache ${subcommand}: takes no arguments, got ${JSON.stringify(args.join(' '))}`);
  if (scoped && args.length === 0) throw new ConfigError(`cache ${subcommand}: name what to ${subcommand}: sha256:<digest> or registry[/repository[:tag]], such as docker.io/library/alpine:3.20`);
  const scopes = args.map((arg) => {
    try {
      return scopeFromText(arg);
    } catch (error) {
      if (error instanceof CacheScopeError) throw new ConfigError(`cache ${subcommand}: ${error.message}`);
      throw error;
    }
  });
  const maxSize = options.maxSize === undefined ? undefined : parseSize(options.maxSize);
  if (maxSize === null) throw new ConfigError(`--max-size: expected a size such as 32g, got ${JSON.stringify(options.maxSize)}`);
  return { subcommand, scopes, maxSize, force: options.force === true, human: options.human ?? process.stdout.isTTY === true };
}

/** The body of a purge, pin or unpin: the scope as the admin API takes it. */
function scopeBody(scope: CacheScope): Record<string, string> {
  const { kind: _kind, ...fields } = scope;
  return fields;
}

/** The job done by the running Layover; null when none answers (then the files are used). */
async function viaAdminApi(endpoint: AdminEndpoint, job: CacheJob): Promise<string | null> {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T | null> => {
    const response = await callAdmin(endpoint, method, path, body);
    if (response === null) return null;
    const text = await response.text();
    if (!response.ok) throw new ConfigError(`cache ${job.subcommand}: the running Layover answered ${response.status}: ${apiError(text)}`);
    return JSON.parse(text) as T;
  };
  switch (job.subcommand) {
    case 'stats': {
      const stats = await call<Record<string, unknown> & { bytes: number; maxSize: number }>('GET', '/admin/stats');
      return stats && statsText(stats, job.human);
    }
    case 'ls': {
      const answer = await call<{ blobs: BlobRow[] }>('GET', '/admin/blobs');
      return answer && blobsText(answer.blobs, job.human);
    }
    case 'prune': {
      const result = await call<{ removed: number; freedBytes: number }>('POST', '/admin/prune', job.maxSize === undefined ? {} : { maxSize: job.maxSize });
      return result && pruneText(result, job.human);
    }
    case 'verify': {
      const result = await call<{ checked: number; removed: string[] }>('POST', '/admin/verify', {});
      return result && verifyText(result, job.human);
    }
    case 'purge':
    case 'pin':
    case 'unpin': {
      const results: Array<Record<string, unknown> & { scope: string }> = [];
      for (const scope of job.scopes) {
        const result = await call<Record<string, unknown> & { scope: string }>('POST', `/admin/${job.subcommand}`, { ...scopeBody(scope), ...(job.subcommand === 'purge' && job.force ? { force: true } : {}) });
        if (result === null) return results.length === 0 ? null : scopedText(job, results);
        results.push(result);
      }
      return scopedText(job, results);
    }
  }
}

function scopedText(job: CacheJob, results: Array<Record<string, unknown> & { scope: string }>): string {
  return job.subcommand === 'purge' ? purgeText(results as unknown as PurgeAnswer[], job.human) : pinText(results, job.subcommand as 'pin' | 'unpin', job.human);
}

/** The message of an OCI error answer, or the start of whatever else came. */
function apiError(text: string): string {
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const first = parsed.errors?.[0];
    if (first) return `${first.code ?? ''} ${first.message ?? ''}`.trim();
  } catch {
    // Not JSON: shown as it is, shortened.
  }
  return text.slice(0, 200);
}

async function runOn(dataDir: string, config: LayoverConfig, job: CacheJob, logger: FastifyBaseLogger): Promise<string> {
  // Opening evicts down to maxSize: open without a cap so that only `prune` removes anything (and reports it).
  const cache = await BlobCache.open({
    dir: join(dataDir, 'cache'),
    maxSize: Number.MAX_SAFE_INTEGER,
    logger,
    stallTimeoutMs: config.timeouts.proxyReadMs,
    blobStore: config.blobStore,
    cacheIndex: config.cacheIndex,
  });
  try {
    // Offline, the crash repairs a serving Layover runs after it is ready come first: the listing shows the repaired cache.
    await cache.reconciled();
    switch (job.subcommand) {
      case 'stats':
        return statsText({ ...cache.stats(), maxSize: config.cacheMaxSize, ...(await cache.pinStats()) }, job.human);
      case 'ls': {
        const pinned = job.human ? await cache.pins.pinnedDigests() : new Set<string>();
        return blobsText(cache.list().map((e) => ({ ...e, lastAccess: new Date(e.lastAccess).toISOString(), pinned: pinned.has(e.digest) })), job.human);
      }
      case 'prune':
        return pruneText(await cache.prune(job.maxSize ?? config.cacheMaxSize), job.human);
      case 'verify':
        return verifyText(await cache.verify(), job.human);
      case 'purge': {
        const results: PurgeAnswer[] = [];
        for (const scope of job.scopes) results.push(await cache.purge(scope, { force: job.force }));
        return purgeText(results, job.human);
      }
      case 'pin':
      case 'unpin': {
        const results: Array<Record<string, unknown> & { scope: string }> = [];
        for (const scope of job.scopes) {
          if (job.subcommand === 'unpin') results.push({ scope: scopeName(scope), pinned: false, wasPinned: await cache.pins.unpin(scope) });
          else results.push({ scope: scopeName(scope), pinned: true, added: await cache.pins.pin(scope), ...(await cache.catalog.cachedSize(scope)) });
        }
        return pinText(results, job.subcommand, job.human);
      }
    }
  } finally {
    await cache.close();
  }
}
