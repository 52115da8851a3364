/**
 * Issue 10, "one error path": a cached manifest evicted between the access check and the read used
 * to throw inside the access check's continuation, where nothing caught it: an unhandled rejection,
 * which ends a Layover process, and a client left without an answer. The eviction is made to happen
 * exactly there: the access check of a second repository asks the upstream with a HEAD, the fixture
 * holds that HEAD, the test evicts everything through the cache's own API, then lets the HEAD go.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type InterceptedFixture, interceptFixture } from '../../helpers/intercepted-fixture.js';
import { type HeldManifestUpstream, MANIFEST_ADDRESS, MANIFEST_HOST, OCI_MANIFEST, startHeldManifestUpstream } from './held-manifest-upstream.js';

let upstream: HeldManifestUpstream;
let intercepted: InterceptedFixture;
const rejections: unknown[] = [];
const onRejection = (reason: unknown): void => void rejections.push(reason);

beforeEach(async () => {
  rejections.length = 0;
  process.on('unhandledRejection', onRejection);
  upstream = await startHeldManifestUpstream();
}, 30_000);
afterEach(async () => {
  process.off('unhandledRejection', onRejection);
  await intercepted?.close();
  await upstream?.close();
});

const intercept = async (env: Record<string, string> = {}): Promise<InterceptedFixture> => {
  intercepted = await interceptFixture({ host: MANIFEST_HOST, address: MANIFEST_ADDRESS, port: upstream.port, caFile: upstream.caFile, env });
  return intercepted;
};

it('a manifest evicted after the access check and before the read is fetched again, with no unhandled rejection', async () => {
  const { layover } = await intercept();
  const ask = (path: string, timeoutMs?: number) => intercepted.ask(path, { headers: { accept: OCI_MANIFEST }, ...(timeoutMs ? { timeoutMs } : {}) });
  const { digest, bytes } = upstream.manifest;
  const first = await ask(`/v2/team/one/manifests/${digest}`);
  expect(first.status).toBe(200);
  await expect.poll(() => layover.app.cache.stat(digest)).toBeDefined();

  // Under another repository the digest is not known to exist yet: Layover asks upstream with a HEAD.
  upstream.heads.start();
  const answer = ask(`/v2/team/two/manifests/${digest}`, 15_000);
  await upstream.heads.held(1);
  await layover.app.cache.prune(0);
  expect(layover.app.cache.stat(digest)).toBeUndefined();
  upstream.heads.release();

  const second = await answer;
  expect(second.status, second.body.toString()).toBe(200);
  expect(second.body.equals(bytes)).toBe(true);
  expect(second.headers['content-type']).toBe(OCI_MANIFEST);
  expect(second.headers['docker-content-digest']).toBe(digest);
  // It went upstream again, since the cache no longer had it.
  expect(upstream.seen.filter((r) => r.method === 'GET' && r.url === `/v2/team/two/manifests/${digest}`)).toHaveLength(1);
  expect(rejections).toEqual([]);
  // And Layover still serves.
  expect((await ask(`/v2/team/one/manifests/${digest}`)).status).toBe(200);
}, 30_000);

it('by tag from the manifest cache: the same, fetched again by tag', async () => {
  // Every hit asks upstream whether the repository is still public, so the HEAD can be held on a hit.
  const { layover, ask } = await intercept({ ENABLE_MANIFEST_CACHE: 'true', ANONYMOUS_ACCESS_TTL: '0ms' });
  const get = (timeoutMs?: number) => ask('/v2/team/one/manifests/v1', { headers: { accept: OCI_MANIFEST }, ...(timeoutMs ? { timeoutMs } : {}) });
  expect((await get()).status).toBe(200);
  await expect.poll(() => layover.app.cache.stat(upstream.manifest.digest)).toBeDefined();

  upstream.heads.start();
  const answer = get(15_000);
  await upstream.heads.held(1);
  await layover.app.cache.prune(0);
  upstream.heads.release();

  const second = await answer;
  expect(second.status, second.body.toString()).toBe(200);
  expect(second.body.equals(upstream.manifest.bytes)).toBe(true);
  expect(second.headers['content-type']).toBe(OCI_MANIFEST);
  expect(upstream.seen.filter((r) => r.method === 'GET' && r.url === '/v2/team/one/manifests/v1')).toHaveLength(2);
  expect(rejections).toEqual([]);
}, 30_000);
