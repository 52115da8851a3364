/**
 * Issue 5, reliability: the disk fills up during a fill. The data dir is a 3 MiB tmpfs (mounted on a
 * temporary directory for this file and unmounted after; needs root, like the bench) and the blob is
 * 4 MiB. The client must still get its bytes (the fill is dropped, not the response), nothing partial
 * is indexed or left behind, Layover says so once, and it goes on serving.
 */
import { execFileSync } from 'node:child_process';
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

it('disk full during a fill: nothing partial is kept, it is logged once, Layover keeps serving', async () => {
  const { upstream, layover, dataDir, get } = await startOnSmallDisk();
  const big = await get(`/v2/slow/blobs/${upstream.slow.digest}`);
  // Today the response is cut off with the fill (see the known-bug test below), never completed wrongly.
  if (!big.complete) expect(big.body.equals(upstream.slow.bytes.subarray(0, big.body.length))).toBe(true);
  else expect(big.body.equals(upstream.slow.bytes)).toBe(true);

  const tmp = new CacheLayout(join(dataDir, 'cache')).tmpDir;
  await vi.waitFor(() => expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]));
  expect(layover.app.cache.stat(upstream.slow.digest as Digest)).toBeUndefined();
  const complaints = layover.logs.filter((l) => l.level >= LEVEL.warn && JSON.stringify(l).includes('ENOSPC'));
  // The fill is logged once; a second line today is the cut response's (the known bug below).
  expect(complaints.filter((l) => l.msg === 'cache fill dropped')).toHaveLength(1);
  expect(complaints.filter((l) => l.msg !== 'response terminated with an error with headers already sent').map((l) => l.msg)).toEqual(['cache fill dropped']);

  // Still serving, and still filling what fits.
  const small = await get(`/v2/library/app/blobs/${upstream.blob.digest}`);
  expect(small.body.equals(upstream.blob.bytes)).toBe(true);
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.blob.digest as Digest)).toBeDefined());
}, 60_000);

// Known bug (reported, not fixed): readers follow the fill's temp file, so when a write fails with
// ENOSPC the fill fails and takes every client's response down with it (src/cache/blob-fill.ts: fail()
// is the readers' failure too). The issue asks for the fill to be dropped and the response to go on.
it.fails('disk full during a fill: the client still gets every byte (known bug)', async () => {
  const { upstream, get } = await startOnSmallDisk();
  const big = await get(`/v2/slow/blobs/${upstream.slow.digest}`);
  expect(big.complete).toBe(true);
  expect(big.body.equals(upstream.slow.bytes)).toBe(true);
}, 60_000);
