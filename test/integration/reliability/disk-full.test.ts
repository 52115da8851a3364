/**
 * Issue 5, reliability: the disk fills up during a fill. The data dir is a 3 MiB tmpfs (mounted on a
 * temporary directory for this file and unmounted after; needs root, like the bench) and the blob is
 * 4 MiB. The client must still get its bytes (the fill is dropped, not the response), nothing partial
 * is indexed or left behind, Layover says so once, and it goes on serving.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished, vi } from 'vitest';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import type { Digest } from '../../../src/registry/digest.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { LEVEL } from '../../helpers/capture-logger.js';
import { startLayover } from '../../helpers/start-layover.js';
import { PASSWORD, startHostileUpstream, UPSTREAM_HOST, USER } from '../hardening/hostile-upstream.js';

/** Layover on a 3 MiB tmpfs data dir, and a GET that reports whether the body arrived complete. */
async function startOnSmallDisk() {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dataDir]);
  onTestFinished(() => {
    execFileSync('umount', ['-l', dataDir]);
    rmSync(dataDir, { recursive: true, force: true });
  });
  const upstream = await startHostileUpstream();
  onTestFinished(() => upstream.close());
  const dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'] } });
  onTestFinished(() => dns.stop());
  const registries = `${UPSTREAM_HOST}:${upstream.port}`;
  const layover = await startLayover(
    { 'data-dir': dataDir, registries, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': upstream.ca.certFile },
    { AUTH_REGISTRIES: `${registries}|${USER}|${PASSWORD}`, AUTH_REGISTRY_DELIMITER: '|' },
  );
  onTestFinished(() => layover.close());

  const get = (path: string): Promise<{ status: number; body: Buffer; complete: boolean }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: upstream.port, servername: UPSTREAM_HOST, path, ca: layover.app.ca.certPem, headers: { host: registries } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: false }));
      });
      req.on('error', reject);
      req.end();
    });

  return { upstream, layover, dataDir, get };
}

/** Nothing of the dropped fill is left: no temp file, no entry; and the one warning names ENOSPC. */
async function expectDroppedOnce(layover: Awaited<ReturnType<typeof startOnSmallDisk>>['layover'], dataDir: string, digest: string): Promise<void> {
  const tmp = new CacheLayout(join(dataDir, 'cache')).tmpDir;
  await vi.waitFor(() => expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]));
  expect(layover.app.cache.stat(digest as Digest)).toBeUndefined();
  // The line follows the temp file's removal by a turn or so.
  const complaints = () => layover.logs.filter((l) => l.level >= LEVEL.warn && JSON.stringify(l).includes('ENOSPC')).map((l) => l.msg);
  await vi.waitFor(() => expect(complaints()).toEqual(['cache fill dropped']));
  // No response was cut.
  expect(layover.logs.filter((l) => l.msg === 'response terminated with an error with headers already sent')).toEqual([]);
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

it('disk full during a fill: the client still gets every byte, nothing partial is kept, it is logged once', async () => {
  const { upstream, layover, dataDir, get } = await startOnSmallDisk();
  const big = await get(`/v2/slow/blobs/${upstream.slow.digest}`);
  expect(big.status).toBe(200);
  expect(big.complete).toBe(true);
  expect(big.body.length).toBe(upstream.slow.bytes.length);
  expect(sha256(big.body)).toBe(upstream.slow.digest);
  await expectDroppedOnce(layover, dataDir, upstream.slow.digest);

  // Still serving, and still filling what fits.
  const small = await get(`/v2/library/app/blobs/${upstream.blob.digest}`);
  expect(small.body.equals(upstream.blob.bytes)).toBe(true);
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.blob.digest as Digest)).toBeDefined());
}, 60_000);

it('disk full during a fill: every client already following it gets every byte; a later one asks upstream itself', async () => {
  const { upstream, layover, dataDir, get } = await startOnSmallDisk();
  const path = `/v2/slow/blobs/${upstream.slow.digest}`;
  const upstreamGets = () => upstream.seen.filter((r) => r.method === 'GET' && r.url === path).length;
  const together = await Promise.all([get(path), get(path), get(path)]);
  // One download shared by the three, and all three complete and right.
  expect(upstreamGets()).toBe(1);
  for (const response of together) {
    expect(response.complete).toBe(true);
    expect(sha256(response.body)).toBe(upstream.slow.digest);
  }
  await expectDroppedOnce(layover, dataDir, upstream.slow.digest);

  // The dropped fill is nobody's to join: the next client starts its own download (which is dropped too).
  const later = await get(path);
  expect(upstreamGets()).toBe(2);
  expect(later.complete).toBe(true);
  expect(sha256(later.body)).toBe(upstream.slow.digest);
  expect(layover.app.cache.stat(upstream.slow.digest as Digest)).toBeUndefined();
  // Each fill says so once.
  await vi.waitFor(() => expect(layover.logs.filter((l) => l.msg === 'cache fill dropped' && JSON.stringify(l).includes('ENOSPC'))).toHaveLength(2));
}, 60_000);
