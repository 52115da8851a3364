/**
 * Issue 5, reliability: the upstream dies and comes back. While it is down, clients get what the cache
 * holds (blobs, and the last manifest seen for a tag, served stale) and a clear 503 for anything else;
 * once it is back, the same Layover (no restart) serves misses again.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { Digest } from '../../../src/registry/digest.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { httpsGet } from '../../helpers/https-get.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { PASSWORD, startHostileUpstream, UPSTREAM_HOST, USER, type HostileUpstream } from '../hardening/hostile-upstream.js';

let upstream: HostileUpstream;
let dns: Dnsmasq;
let layover: RunningLayover;

beforeAll(async () => {
  upstream = await startHostileUpstream();
  dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'] } });
  layover = await startLayover(
    { registries: `${UPSTREAM_HOST}:${upstream.port}`, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': upstream.ca.certFile, 'proxy-connect-timeout': '2s' },
    { AUTH_REGISTRIES: `${UPSTREAM_HOST}:${upstream.port}|${USER}|${PASSWORD}`, AUTH_REGISTRY_DELIMITER: '|' },
  );
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await dns?.stop();
  await upstream?.close();
});

const get = (path: string) => httpsGet(upstream.port, UPSTREAM_HOST, path, layover.app.ca.certPem);

it('serves the cache and clear 503s while the upstream is down, and everything again once it is back', async () => {
  const blobPath = `/v2/library/app/blobs/${upstream.blob.digest}`;
  const blob2Path = `/v2/library/app/blobs/${upstream.blob2.digest}`;
  const tagPath = '/v2/library/app/manifests/good';
  expect((await get(blobPath)).status).toBe(200);
  const fresh = await get(tagPath);
  expect(fresh.status).toBe(200);
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.blob.digest as Digest)).toBeDefined());
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.manifest.digest as Digest)).toBeDefined());

  await upstream.stop();
  const cachedBlob = await get(blobPath);
  expect(cachedBlob.status).toBe(200);
  const stale = await get(tagPath);
  expect(stale).toEqual(fresh);
  const miss = await get(blob2Path);
  expect(miss.status).toBe(503);
  expect(JSON.parse(miss.body)).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  expect(layover.logs.some((l) => l.msg === 'request' && l.cache === 'stale')).toBe(true);

  await upstream.start();
  await vi.waitFor(async () => expect((await get(blob2Path)).status).toBe(200), { timeout: 15_000, interval: 250 });
  const before = upstream.seen.length;
  expect((await get(tagPath)).status).toBe(200);
  expect(upstream.seen.length).toBeGreaterThan(before);
  // The ping passes through as the upstream answers it (its own 401 challenge here): reached, not a 5xx.
  expect((await get('/v2/')).status).toBe(401);
  // Errors and retries around the outage log no credential.
  const text = layover.logs.map((l) => JSON.stringify(l)).join('\n');
  for (const secret of [PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString('base64')]) expect(text).not.toContain(secret);
}, 60_000);
