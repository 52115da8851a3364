import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { curl } from '../proxy/curl.js';

// Clients authenticate to Layover (CLIENT_AUTH=htpasswd) and Layover reads the upstream with its
// own account: the access policy says who reads which repository, and a cached digest is served
// under a repository only once upstream has it there (src/access/). carol may read bench/**,
// dave a/**.
const UPSTREAM = ['pusher', randomBytes(12).toString('hex')] as const;
const CAROL = ['carol', randomBytes(12).toString('hex')] as const;
const DAVE = ['dave', randomBytes(12).toString('hex')] as const;

let bench: Bench;
let base: string;
let own: string;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested'], auth: { htpasswd: { [UPSTREAM[0]]: UPSTREAM[1] } }, layover: false });
  const htpasswd = join(bench.sandbox.dir, 'clients.htpasswd');
  const line = (user: string, password: string): string => execFileSync('htpasswd', ['-Bbn', '-C', '5', user, password], { encoding: 'utf8' }).trim();
  writeFileSync(htpasswd, `${line(...CAROL)}\n${line(...DAVE)}\n`);
  const config = join(bench.sandbox.dir, 'policy.yaml');
  writeFileSync(config, ['accessRules:', '  - {users: [carol], repositories: ["bench/**"], actions: [pull]}', '  - {users: [dave], repositories: ["a/**"], actions: [pull]}'].join('\n'));
  await bench.startLayover({
    flags: { config },
    env: { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd, AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${UPSTREAM[0]}:${UPSTREAM[1]}` },
  });
  const ociLayers = new Set(bench.images.oci!.manifests[0]!.layers.map((l) => l.digest));
  const nestedLayers = bench.images.nested!.manifests[0]!.layers.map((l) => l.digest);
  base = nestedLayers.find((d) => ociLayers.has(d))!;
  own = nestedLayers.find((d) => !ociLayers.has(d))!;
}, 180_000);
afterAll(() => bench?.close());

const getBlob = (user: readonly [string, string], repository: string, digest: string) =>
  curl(bench, `https://${INTERCEPTED_HOST}/v2/${repository}/blobs/${digest}`, ['-u', `${user[0]}:${user[1]}`]);
const upstream = (method: string, digest: string): string[] =>
  bench.registry
    .requests()
    .filter((r) => r.method === method && r.path.includes(digest))
    .map((r) => r.path.split('?')[0]!);

describe('access policy and repository membership (CLIENT_AUTH=htpasswd)', () => {
  it('fills the cache for dave from a/b/c', async () => {
    await bench.pullViaLayover(bench.images.nested!.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'dave'), { creds: `${DAVE[0]}:${DAVE[1]}` });
    expect(upstream('GET', own)).toEqual([`/v2/a/b/c/blobs/${own}`]);
  }, 60_000);

  it('refuses carol the private repository by policy, before any cache lookup', async () => {
    const result = await getBlob(CAROL, 'a/b/c', own);
    expect(result.status).toBe(403);
    expect(JSON.parse(result.body.toString())).toMatchObject({ errors: [{ code: 'DENIED' }] });
  });

  it('does not hand carol a cached digest under a repository she may read but that does not hold it', async () => {
    const result = await getBlob(CAROL, 'bench/oci', own);
    expect(result.status).toBe(404);
    expect(JSON.parse(result.body.toString())).toMatchObject({ errors: [{ code: 'BLOB_UNKNOWN' }] });
    await bench.registry.sync();
    // Upstream was asked (a HEAD, with Layover's account) and never gave the blob under bench/oci.
    expect(upstream('HEAD', own)).toEqual([`/v2/bench/oci/blobs/${own}`]);
    expect(upstream('GET', own)).toEqual([`/v2/a/b/c/blobs/${own}`]);
  });

  it('serves carol a shared digest from the cache once upstream confirms bench/oci holds it, then without asking', async () => {
    for (let i = 0; i < 2; i++) {
      const result = await getBlob(CAROL, 'bench/oci', base);
      expect(result.status).toBe(200);
      expect(result.headers['docker-content-digest']).toBe(base);
    }
    await bench.registry.sync();
    expect(upstream('HEAD', base)).toEqual([`/v2/bench/oci/blobs/${base}`]);
    expect(upstream('GET', base)).toEqual([`/v2/a/b/c/blobs/${base}`]);
  });
});
