import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBench, type Bench } from '../../bench/bench.js';
import { startRegistry } from '../../bench/registry.js';
import { skopeo } from '../../bench/skopeo.js';
import { dirContents } from '../proxy/dir-compare.js';
import { startTokenServer, type TokenLine } from './auth-bench.js';

// A self-hosted GitLab: its registry at gitlab.test:5050, its token realm at https://gitlab.test/jwt/auth
// (443, with the web UI). REGISTRIES names the registry's port only, and Layover's DNS answers the
// name for every port: a client resolving through Layover reaches Layover at 443, not the realm.
// Layover points such challenges at its own token endpoint on the registry's name and relays them,
// though it holds no credential for the registry. The realm is test/fixtures/token-server.mjs.
const GITLAB = 'gitlab.test';
const ADDRESS = '127.0.0.6';
const REGISTRY = `${GITLAB}:5050`;
const MAINTAINER = ['maintainer', randomBytes(12).toString('hex')] as const;
const DEV = ['dev', randomBytes(12).toString('hex')] as const;

let bench: Bench;
const tokenLines: TokenLine[] = [];
const ref = (repository: string): string => `${REGISTRY}/${repository}:v1`;

beforeAll(async () => {
  bench = await startBench({ images: ['oci'], extraRecords: { [GITLAB]: [ADDRESS] }, layover: false });
  const users = {
    [MAINTAINER[0]]: { password: MAINTAINER[1], grants: { '': ['pull', 'push'] } },
    [DEV[0]]: { password: DEV[1], grants: { 'private/': ['pull'] } },
    '': { password: '', grants: { 'public/': ['pull'] } },
  };
  const auth = await startTokenServer(bench.sandbox, bench.ca, users, tokenLines, { host: GITLAB, address: ADDRESS, service: 'container_registry' }, '/jwt/auth');
  await startRegistry(bench.sandbox, bench.ca, { address: ADDRESS, port: 5050, names: [GITLAB], configSections: { auth } });
  for (const repository of ['public/app', 'private/app']) {
    // Seeded straight from the bench's registry, bypassing Layover's DNS.
    await skopeo(bench.sandbox, [
      'copy', '--src-cert-dir', bench.ca.trustDir, '--dest-cert-dir', bench.ca.trustDir, '--dest-creds', MAINTAINER.join(':'),
      `docker://${bench.images.oci!.ref('registry-direct.test')}`, `docker://${ref(repository)}`,
    ], { resolvConf: bench.resolver.resolvConf });
  }
  // No REDIRECT_ALLOW_NETWORKS: the realm is on the registry's own host at 443, reached as the
  // registry is (here on loopback, as a self-hosted GitLab is on a private address).
  await bench.startLayover({ flags: { registries: `registry.test ${REGISTRY}` } });
  tokenLines.length = 0;
}, 180_000);
afterAll(() => bench?.close());

it('pulls a public image for a client without credentials: Layover fetches the anonymous token', async () => {
  const expected = join(bench.sandbox.dir, 'direct');
  await bench.pullDirect(bench.images.oci!.ref('registry-direct.test'), expected);
  const via = join(bench.sandbox.dir, 'public');
  await bench.pullViaLayover(ref('public/app'), via);
  expect(dirContents(via)).toEqual(dirContents(expected));
  expect(tokenLines.some((line) => line.account === '' && line.agent === 'layover' && line.scopes?.includes('repository:public/app:pull'))).toBe(true);
}, 120_000);

// The tests below go on from what the ones before them pulled and cached.
it('relays a client with credentials of its own to the realm, and pulls a private image with its token', async () => {
  tokenLines.length = 0;
  const via = join(bench.sandbox.dir, 'private');
  await bench.pullViaLayover(ref('private/app'), via, { creds: DEV.join(':') });
  expect(dirContents(via)).toEqual(dirContents(join(bench.sandbox.dir, 'public')));
  // The client's own account reached the realm, through Layover (which names itself as the agent).
  const granted = tokenLines.filter((line) => line.account === DEV[0] && line.access?.some((a) => a.name === 'private/app' && a.actions.includes('pull')));
  expect(granted.length).toBeGreaterThan(0);
  expect(granted.every((line) => line.agent === 'layover')).toBe(true);
}, 120_000);

it('refuses the private image, cached now, to a client without credentials: the upstream says no to its anonymous token', async () => {
  tokenLines.length = 0;
  const result = await bench.pullViaLayover(ref('private/app'), join(bench.sandbox.dir, 'anonymous'), { allowFailure: true });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(/unauthorized|denied/i);
  // Not a realm the client could not reach (Layover's 404 at gitlab.test:443).
  expect(result.stderr).not.toMatch(/\b404\b|not found|name unknown/i);
  expect(tokenLines.some((line) => line.account === '' && line.scopes?.includes('repository:private/app:pull') && line.access?.length === 0)).toBe(true);
}, 120_000);

it('points the challenge of a refused cached blob (cached by the tests above) at Layover too, not at the realm the client cannot reach', async () => {
  const layer = bench.images.oci!.manifests[0]!.layers[0]!.digest;
  const url = `https://${REGISTRY}/v2/private/app/blobs/${layer}`;
  const headers = (await bench.sandbox.exec('curl', ['-sS', '-o', '/dev/null', '-D', '-', '--cacert', bench.layover!.caFile, url])).stdout;
  expect(headers).toMatch(/^HTTP\/\S+ 401/);
  const challenge = /^www-authenticate: (.*)$/im.exec(headers)?.[1] ?? '';
  expect(challenge).toContain(`realm="https://${REGISTRY}/_layover/token"`);
  expect(challenge).not.toContain('/jwt/auth');
  // The access check's refusal of the cached blob, not a 401 passed on from upstream.
  expect(bench.layover!.logs().some((line) => line.msg === 'request' && line.cache === 'denied' && line.digest === layer)).toBe(true);
}, 60_000);
