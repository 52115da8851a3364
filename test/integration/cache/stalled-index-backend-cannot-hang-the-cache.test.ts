/**
 * A shared index backend that accepts connections and then answers nothing (a real redis-server or
 * postgres frozen with SIGSTOP: the kernel still completes handshakes and takes the bytes) must not
 * hang the cache: every call fails within its bound, as if the backend were unreachable (writes are
 * kept and replayed), a pull goes on without its row, and once the backend answers again the kept
 * writes arrive. Blobs go to s3rver (see s3rver-fixture.ts); the index servers are real.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { BACKEND_CALL_TIMEOUT_MS } from '../../../src/cache/indexes/bounded-calls.js';
import { CacheIndexUnavailableError, type CacheIndex } from '../../../src/cache/cache-index.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { freezeServer } from '../../helpers/frozen-server.js';
import { blob, collect, handSource, meta, openCache, tally } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';
import { indexConfigOf, sharedIndexServers, type SharedIndexServer } from './shared-index-servers.js';

/** A hang guard, many times the bound of one call: what matters is that the call ends at all. */
const SETTLES_WITHIN_MS = 6 * BACKEND_CALL_TIMEOUT_MS;

/** 'resolved', 'rejected' (with the error), or a failed test when the call is still pending after the guard. */
async function settles<T>(what: string, call: Promise<T>): Promise<{ resolved: true; value: T } | { resolved: false; error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${SETTLES_WITHIN_MS} ms`)), SETTLES_WITHIN_MS);
  });
  try {
    return await Promise.race([call.then((value) => ({ resolved: true as const, value })).catch((error: unknown) => ({ resolved: false as const, error })), guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** The index as the test sees it, replaying failed writes soon; closed when the test ends. */
async function openIndex(server: SharedIndexServer): Promise<CacheIndex> {
  const index = await openCacheIndex(indexConfigOf(server), { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger, retryMs: 100 });
  onTestFinished(() => index.close());
  return index;
}

describe.each(sharedIndexServers())('a frozen %s index', (name, server) => {
  it('fails every index call within its bound, and the kept writes arrive once it answers again', async () => {
    const index = await openIndex(server());
    const thaw = await freezeServer(server().port);
    const { digest } = blob(10);
    const row = { digest, size: 10, mediaType: null, kind: 'blob' as const, created: 1, lastAccess: 1, source: 'quay.io/org/repo' };
    const [write, read, lease, secondWrite, entry] = await Promise.all([
      settles('putRecord', index.putRecord(`tag:${name}:frozen`, { digest })),
      settles('readRecord', index.readRecord('tag:absent')),
      settles('acquireLease', index.acquireLease(`frozen-${name}`, 30_000)),
      settles('a second putRecord', index.putRecord(`tag:${name}:second`, { digest })),
      settles('putEntry', index.putEntry(row)),
    ]);
    // Each failed as an unreachable backend fails; none of them hung.
    expect(write.resolved).toBe(false);
    expect(read.resolved).toBe(false);
    expect(lease.resolved).toBe(false);
    expect(secondWrite.resolved).toBe(false);
    expect(entry.resolved).toBe(false);
    // Once a call missed its bound, the next ones fail at once instead of each waiting out a bound in the queue.
    expect((await settles('a later putRecord', index.putRecord(`tag:${name}:later`, { digest }))).resolved).toBe(false);

    await thaw();
    const reader = await openIndex(server());
    for (const deadline = Date.now() + 60_000; ; ) {
      const { records, entries } = await reader.load();
      if (records.has(`tag:${name}:frozen`) && records.has(`tag:${name}:second`) && records.has(`tag:${name}:later`) && entries.some((e) => e.digest === digest)) break;
      if (Date.now() > deadline) throw new Error('the kept writes did not arrive');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await reader.readRecord(`tag:${name}:frozen`)).toEqual({ digest });
  }, 120_000);

  it('lets pulls go on without their rows: a put, a fill and a record, each settled within the bound', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const { cache } = await openCache({ blobStore: s3.config(`frozen-${name}`), cacheIndex: indexConfigOf(server()) });
    const thaw = await freezeServer(server().port);
    const small = blob(300_000);
    const filled = blob(2_000_000);
    const source = handSource();
    const fill = cache.fill(filled.digest, source, meta({ size: filled.bytes.length }));
    const reader = tally(fill.reader());
    source.end(filled.bytes);
    const [put, done, record] = await Promise.all([
      settles('put', cache.put(small.digest, small.bytes, meta())),
      settles('fill', fill.done),
      settles('setRecord', cache.setRecord(`tag:quay.io/org/app:${name}`, { digest: small.digest })),
    ]);
    // The blobs are in the bucket and served; only their rows wait for the index.
    expect(put.resolved).toBe(true);
    expect(done.resolved).toBe(true);
    expect((await reader.ended).equals(filled.bytes)).toBe(true);
    // A record write the index did not take is kept for replay: the pull goes on with it in memory.
    expect(record.resolved).toBe(true);
    expect(cache.getRecord(`tag:quay.io/org/app:${name}`)).toEqual({ digest: small.digest });
    expect((await collect(cache.read(small.digest)!.stream)).equals(small.bytes)).toBe(true);

    await thaw();
    const index = await openIndex(server());
    for (const deadline = Date.now() + 90_000; ; ) {
      const { entries, records } = await index.load();
      const digests = new Set(entries.map((e) => e.digest));
      if (digests.has(small.digest) && digests.has(filled.digest) && records.has(`tag:quay.io/org/app:${name}`)) break;
      if (Date.now() > deadline) throw new Error('the kept rows did not arrive');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }, 150_000);

  it('closes within the bound while the backend is frozen, its feed listening', async () => {
    const index = await openCacheIndex(indexConfigOf(server()), { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    await index.feed!.subscribe({ change: () => undefined, resubscribed: () => undefined });
    await index.putRecord(`tag:${name}:before-close`, { at: 1 });
    await freezeServer(server().port);
    expect((await settles('close', index.close())).resolved).toBe(true);
  }, 60_000);

  it('refuses to open within the bound when the backend accepts but never answers', async () => {
    await freezeServer(server().port);
    const opened = await settles('open', openCacheIndex(indexConfigOf(server()), { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger }));
    if (opened.resolved) await opened.value.close();
    expect(opened.resolved).toBe(false);
    expect((opened as { error: unknown }).error).toBeInstanceOf(CacheIndexUnavailableError);
  }, 60_000);
});
