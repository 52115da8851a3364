import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, startBench } from '../../bench/bench.js';
import { copyToDir, skopeo } from '../../bench/skopeo.js';
import { curl } from '../proxy/curl.js';
import { dirContents } from '../proxy/dir-compare.js';

// docker.example.test is a name of the operator's own: Layover answers it in DNS and with a
// certificate, and maps `docker.example.test/team/app/<x>` to `registry.test/bench/<x>` (the
// bench's registry) and `docker.example.test/deep/<x>` to `registry.test/a/b/<x>`.
const DOMAIN = 'docker.example.test';
let bench: Bench;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested', 'multi'], layover: false });
  const config = join(bench.sandbox.dir, 'layover.yaml');
  writeFileSync(config, [
    'customDomains:',
    `  - {from: ${DOMAIN}/team/app, to: registry.test/bench}`,
    `  - {from: ${DOMAIN}/deep, to: registry.test/a/b}`,
    '',
  ].join('\n'));
  await bench.startLayover({ flags: { config, 'allow-push': true } });
}, 180_000);
afterAll(() => bench?.close());

const blobGets = async () => {
  await bench.registry.sync();
  return bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
};

describe('a custom domain in front of the test registry', () => {
  it('skopeo pulls docker.example.test/team/app/oci and gets the upstream image, byte for byte', async () => {
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'domain-oci');
    const direct = join(bench.sandbox.dir, 'direct-oci');
    await bench.pullViaLayover(`${DOMAIN}/team/app/oci:${image.tag}`, via);
    await bench.pullDirect(image.ref('registry-direct.test'), direct);
    expect(dirContents(via)).toEqual(dirContents(direct));
    // The cache, the access records and the log line see the upstream registry and repository.
    const lines = bench.layover!.logs().filter((l) => l.msg === 'request' && l.host === DOMAIN && l.digest);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.registry === 'registry.test' && l.repo === image.repository && l.via === 'domain')).toBe(true);
  }, 120_000);

  it('shares the cache with the registry name itself: the same image under registry.test is a hit', async () => {
    const image = bench.images.oci!;
    bench.registry.clearRequests();
    await bench.pullViaLayover(image.ref('registry.test'), join(bench.sandbox.dir, 'host-oci'));
    expect(await blobGets()).toEqual([]);
    bench.registry.clearRequests();
    await bench.pullViaLayover(`${DOMAIN}/team/app/oci:${image.tag}`, join(bench.sandbox.dir, 'domain-oci-2'));
    expect(await blobGets()).toEqual([]);
  }, 120_000);

  it('maps a nested prefix and a multi-platform index', async () => {
    const nested = bench.images.nested!;
    const via = join(bench.sandbox.dir, 'domain-nested');
    await bench.pullViaLayover(`${DOMAIN}/deep/c:${nested.tag}`, via);
    expect(dirContents(via)['manifest.json']?.toString()).toBe(nested.raw);
    const multi = bench.images.multi!;
    const all = join(bench.sandbox.dir, 'domain-multi');
    await bench.pullViaLayover(`${DOMAIN}/team/app/multi:${multi.tag}`, all, { all: true });
    expect(dirContents(all)['manifest.json']?.toString()).toBe(multi.raw);
  }, 120_000);

  it('refuses repositories outside the mapped prefixes (NAME_UNKNOWN) and the catalog', async () => {
    for (const path of ['/v2/bench/oci/manifests/v1', '/v2/team/other/manifests/v1', '/v2/team/apples/manifests/v1', '/v2/a/b/c/manifests/v1']) {
      const res = await curl(bench, `https://${DOMAIN}${path}`);
      expect(res.status, path).toBe(404);
      expect(JSON.parse(res.body.toString()).errors[0].code, path).toBe('NAME_UNKNOWN');
    }
    const catalog = await curl(bench, `https://${DOMAIN}/v2/_catalog`);
    expect(catalog.status).toBe(405);
    const failed = await copyToDir(bench.sandbox, `docker://${DOMAIN}/bench/oci:v1`, join(bench.sandbox.dir, 'outside'), { certDir: bench.layover!.certDir, allowFailure: true });
    expect(failed.code).not.toBe(0);
  }, 60_000);

  it('pushes (ALLOW_PUSH) under the client name: upload Locations lead back through the custom domain', async () => {
    const source = join(bench.sandbox.dir, 'domain-oci');
    await skopeo(bench.sandbox, ['copy', '--dest-tls-verify=true', '--dest-cert-dir', bench.layover!.certDir, `dir:${source}`, `docker://${DOMAIN}/team/app/pushed:v9`]);
    const uploads = bench.registry.requests().filter((r) => r.path.startsWith('/v2/bench/pushed/'));
    expect(uploads.some((r) => r.method === 'PUT' && r.path.startsWith('/v2/bench/pushed/manifests/v9'))).toBe(true);
    const pushed = join(bench.sandbox.dir, 'pushed-direct');
    await bench.pullDirect('registry-direct.test/bench/pushed:v9', pushed);
    expect(dirContents(pushed)['manifest.json']).toEqual(dirContents(source)['manifest.json']);
  }, 120_000);

  it('lists tags under the client name, with pagination links renamed', async () => {
    const list = await curl(bench, `https://${DOMAIN}/v2/team/app/oci/tags/list`);
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body.toString())).toEqual({ name: 'team/app/oci', tags: ['v1'] });
    const page = await curl(bench, `https://${DOMAIN}/v2/deep/c/tags/list?n=1`);
    expect(JSON.parse(page.body.toString()).name).toBe('deep/c');
    const inspect = await bench.sandbox.exec('skopeo', ['--insecure-policy', 'list-tags', '--cert-dir', bench.layover!.certDir, `docker://${DOMAIN}/team/app/oci`], {
      env: { CONTAINERS_REGISTRIES_CONF: '/dev/null', REGISTRY_AUTH_FILE: join(bench.sandbox.dir, 'skopeo', 'auth.json') },
    });
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout)).toEqual({ Repository: `${DOMAIN}/team/app/oci`, Tags: ['v1'] });
  }, 60_000);
});
