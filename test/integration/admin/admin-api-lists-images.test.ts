import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { digestsOf, OCI_INDEX, OCI_MANIFEST, pullImage } from '../../unit/admin/image-fixture.js';
import { blob } from '../../unit/cache/cache-fixture.js';

// In-process Layover; its cache holds images stored as pulls leave them (image-fixture.ts), and the
// admin API on the HTTP listener lists them by registry, repository and tag.
const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
});

async function adminGet(layover: RunningLayover, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const token = readFileSync(join(layover.dataDir, 'admin.token'), 'utf8').trim();
  const response = await fetch(`http://127.0.0.1:${layover.addresses.http!.port}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('GET /admin/images', () => {
  it('lists tags and by-digest manifests with their sizes, last use and pins; a platform of an index is part of its image', async () => {
    const layover = await startLayover();
    running.push(layover);
    const { cache } = layover.app;
    const base = blob(1000);
    const app = await pullImage(cache, 'app', 'v1', [base, blob(2000)]);
    const amd64 = await pullImage(cache, 'multi', null, [blob(300)]);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ digest: amd64.manifest, mediaType: OCI_MANIFEST, size: 1 }, { digest: digestOf(Buffer.from('arm64, never pulled')), mediaType: OCI_MANIFEST, size: 1 }] }));
    const index = digestOf(body);
    await cache.put(index, body, { size: body.length, mediaType: OCI_INDEX, kind: 'manifest', source: 'registry.test/multi' });
    await cache.setRecord(`tag:registry.test/multi:latest|${OCI_INDEX}`, { digest: index, fetchedAt: Date.now() });
    await cache.pins.pin({ kind: 'repository', registry: 'registry.test', repository: 'multi' });

    const sizeOf = (digests: string[]): number => digests.reduce((sum, digest) => sum + cache.stat(digest as never)!.size, 0);
    const listed = await adminGet(layover, '/admin/images');
    expect(listed.status).toBe(200);
    expect(listed.body.images).toEqual([
      { registry: 'registry.test', repository: 'app', tag: 'v1', digest: app.manifest, mediaType: OCI_MANIFEST, bytes: sizeOf(digestsOf(app)), blobs: 4, missing: 0, lastUsed: expect.any(String), pinned: false },
      { registry: 'registry.test', repository: 'multi', tag: 'latest', digest: index, mediaType: OCI_INDEX, bytes: sizeOf([index, ...digestsOf(amd64)]), blobs: 4, missing: 1, lastUsed: expect.any(String), pinned: true },
    ]);
    const filtered = await adminGet(layover, '/admin/images?registry=registry.test&repository=app');
    expect((filtered.body.images as Array<{ repository: string }>).map((row) => row.repository)).toEqual(['app']);
    expect((await adminGet(layover, '/admin/images?registry=docker.io')).body.images).toEqual([]);
    expect((await adminGet(layover, '/admin/images?repository=app')).status).toBe(400);

    const stats = await adminGet(layover, '/admin/stats');
    expect(stats.body).toMatchObject({ entries: 8, pins: 1, pinnedEntries: 4, pinnedBytes: sizeOf([index, ...digestsOf(amd64)]) });
    const blobs = (await adminGet(layover, '/admin/blobs')).body.blobs as Array<{ digest: string; pinned: boolean }>;
    expect(blobs.filter((row) => row.pinned).map((row) => row.digest).sort()).toEqual([index, ...digestsOf(amd64)].sort());
    const token = readFileSync(join(layover.dataDir, 'admin.token'), 'utf8').trim();
    const verified = await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/admin/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(await verified.json()).toEqual({ checked: 8, removed: [] });
    expect((await adminGet(layover, '/admin/pins')).body.pins).toEqual([{ scope: 'registry.test/multi', kind: 'repository', at: expect.any(String) }]);
  });
});
