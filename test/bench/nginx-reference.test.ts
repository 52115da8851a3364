/**
 * Self-tests of the nginx reference proxy of bench/ (bench/lib/nginx.ts): it runs inside the bench's
 * sandbox, fetches from the upstream registry over TLS, answers from its cache once
 * waitForCached() says the cache has committed (one upstream GET for two client GETs, the same
 * bytes), and leaves neither processes nor files behind. Its numbers mean nothing if it quietly
 * proxied every request or served from somewhere else.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type NginxProxy, startNginx } from '../../bench/lib/nginx.js';
import { childPids } from '../../bench/lib/process-stats.js';
import { type Bench, startBench } from './bench.js';
import { processAlive } from '../helpers/server-process.js';

describe('the nginx reference proxy of bench/', () => {
  let bench: Bench;
  let nginx: NginxProxy;
  beforeAll(async () => {
    bench = await startBench({ images: ['oci'], layover: false });
    nginx = await startNginx(bench);
  }, 180_000);
  afterAll(() => bench?.close());

  const get = async (path: string, out: string): Promise<{ status: string; cache: string | undefined }> => {
    const { endpoint } = nginx;
    const curl = await bench.sandbox.exec('curl', [
      '-sS', '--http1.1', '-o', out, '-D', '-', '--cacert', endpoint.caFile,
      '--resolve', `${endpoint.host}:443:${endpoint.address}`, `https://${endpoint.host}${path}`,
    ]);
    expect(curl.code, curl.stderr).toBe(0);
    return { status: /^HTTP\/1\.1 (\d+)/.exec(curl.stdout)?.[1] ?? '', cache: /^x-cache-status: *(\S+)/im.exec(curl.stdout)?.[1] };
  };

  test('a blob is fetched once, then answered from the cache with the same bytes', async () => {
    const image = bench.images.oci!;
    const blob = [...image.blobs].sort((a, b) => b.size - a.size)[0]!;
    const path = `/v2/${image.repository}/blobs/${blob.digest}`;
    bench.registry.clearRequests();
    const first = join(bench.sandbox.dir, 'nginx-first');
    const second = join(bench.sandbox.dir, 'nginx-second');

    expect(await get(path, first)).toEqual({ status: '200', cache: 'MISS' });
    await nginx.waitForCached(path, blob.size, 20_000);
    expect(await get(path, second)).toEqual({ status: '200', cache: 'HIT' });

    for (const file of [first, second]) expect(`sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`).toBe(blob.digest);
    await bench.registry.sync();
    expect(bench.registry.requests().filter((r) => r.method === 'GET' && r.path === path)).toHaveLength(1);
  });

  test('its processes are the master and its workers, and close() stops them and removes its files', async () => {
    const workers = childPids(nginx.pid);
    expect(workers.length).toBeGreaterThan(0);
    expect(nginx.cpuPids()).toEqual([nginx.pid, ...workers]);
    expect(nginx.rssPids()).toEqual(workers);
    const dir = join(bench.sandbox.dir, 'nginx-127.0.0.5');
    expect(existsSync(join(dir, 'nginx.conf'))).toBe(true);

    await bench.close();
    for (const pid of [nginx.pid, ...workers]) expect(processAlive(pid), `process ${pid}`).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });
});
