import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { dirContents } from '../proxy/dir-compare.js';
import { curl } from '../proxy/curl.js';
import { expectNoSecretsInLog, REALM_HOST, startTokenBench, type TokenBench, trustLayoverAndRealm } from './auth-bench.js';

// The upstream registry in token mode (auth.token) with test/fixtures/token-server.mjs as realm.
// alice (Layover's AUTH_REGISTRIES account) may pull bench/*, bob only a/*.
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
const ALICE = ['alice', randomBytes(12).toString('hex')] as const;
const BOB = ['bob', randomBytes(12).toString('hex')] as const;
const SECRETS: Array<[string, string]> = [[...PUSHER], [...ALICE], [...BOB]];
const AUTH_REGISTRIES = `${INTERCEPTED_HOST}:${ALICE[0]}:${ALICE[1]}`;

let t: TokenBench;
beforeAll(async () => {
  t = await startTokenBench(
    {
      [PUSHER[0]]: { password: PUSHER[1], grants: { '': ['pull', 'push'] } },
      [ALICE[0]]: { password: ALICE[1], grants: { 'bench/': ['pull'] } },
      [BOB[0]]: { password: BOB[1], grants: { 'a/': ['pull'] } },
    },
    { images: ['oci', 'multi', 'nested'], layover: { env: { AUTH_REGISTRIES } } },
  );
}, 180_000);
afterAll(() => t?.bench.close());

/** Neither a password nor any token the token server issued shows up in Layover's log. */
const expectNothingSecretLogged = (): void => {
  const tokens = t.tokenRequests().flatMap((l) => (l.token ? [l.token] : []));
  expect(tokens.length).toBeGreaterThan(0);
  expectNoSecretsInLog(t.bench, [...SECRETS, ...tokens]);
};

describe('upstream token authentication', () => {
  it('skopeo without credentials pulls with the AUTH_REGISTRIES account: one token fetch for all blobs of a repository', async () => {
    const { bench } = t;
    const image = bench.images.multi!;
    const direct = join(bench.sandbox.dir, 'token-direct');
    await bench.pullDirect(image.ref('registry-direct.test'), direct, { all: true });
    // Four clients at once: their requests share Layover's one token fetch.
    const vias = [0, 1, 2, 3].map((i) => join(bench.sandbox.dir, `token-via-${i}`));
    await Promise.all(vias.map((via) => bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { all: true })));
    for (const via of vias) expect(dirContents(via)).toEqual(dirContents(direct));
    expect(image.blobs.length).toBeGreaterThan(3);

    const alices = t.tokenRequests().filter((l) => l.account === ALICE[0]);
    const forRepository = alices.filter((l) => l.scopes?.includes(`repository:${image.repository}:pull`));
    expect(forRepository).toHaveLength(1);
    expect(forRepository[0]!.access).toEqual([{ type: 'repository', name: image.repository, actions: ['pull'] }]);
    // The client itself never went to the realm: Layover's token endpoint gave it the placeholder.
    // (Layover's own anonymous token, if any, is its check of whether the repository is public: src/access/.)
    expect(t.tokenRequests().filter((l) => l.account === '' && l.agent !== 'layover')).toEqual([]);
    expect(bench.layover!.logs().some((l) => l.msg === 'request' && l.tokenRequest === 'placeholder')).toBe(true);
    expectNothingSecretLogged();
  }, 120_000);

  it("a client's own credentials win: bob reads a/b/c, which Layover's account cannot, and cannot read what it can", async () => {
    const { bench } = t;
    const nested = bench.images.nested!;
    // Layover's account alone is refused, with a clear error and the credential named in the log.
    const refused = await bench.pullViaLayover(nested.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'token-refused'), { allowFailure: true });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/registry\.test did not accept the credentials Layover holds for repository a\/b\/c/);
    const warning = await bench.layover!.waitForLog((l) => l.msg === 'upstream refused the configured credential');
    expect(warning).toMatchObject({ registry: INTERCEPTED_HOST, repo: nested.repository, credential: `${ALICE[0]}@${INTERCEPTED_HOST}` });

    // With bob's credentials the same pull succeeds: his token, fetched through Layover's token endpoint.
    const via = join(bench.sandbox.dir, 'token-bob');
    await bench.pullViaLayover(nested.ref(INTERCEPTED_HOST), via, { creds: `${BOB[0]}:${BOB[1]}` });
    expect(dirContents(via)['manifest.json']?.toString()).toBe(nested.raw);
    expect(t.tokenRequests().some((l) => l.account === BOB[0] && l.scopes?.includes(`repository:${nested.repository}:pull`))).toBe(true);

    // And bob cannot read bench/oci even though Layover's account could: his credentials are not replaced.
    const oci = bench.images.oci!;
    const bobOnOci = await bench.pullViaLayover(oci.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'token-bob-oci'), { creds: `${BOB[0]}:${BOB[1]}`, allowFailure: true });
    expect(bobOnOci.code).not.toBe(0);
    expect(bobOnOci.stderr).toMatch(/registry\.test did not accept the client's credentials for repository bench\/oci/);
    expectNothingSecretLogged();
  }, 120_000);

  it('challenges point at Layover only while it holds credentials; without the entry the pull fails with UNAUTHORIZED naming the registry', async () => {
    const { bench } = t;
    const ping = await curl(bench, `https://${INTERCEPTED_HOST}/v2/`);
    expect(ping.status).toBe(401);
    expect(ping.headers['www-authenticate']).toBe(`Bearer realm="https://${INTERCEPTED_HOST}/_layover/token",service="${INTERCEPTED_HOST}"`);

    await bench.layover!.stop();
    await bench.startLayover();
    const unchanged = await curl(bench, `https://${INTERCEPTED_HOST}/v2/`);
    expect(unchanged.headers['www-authenticate']).toBe(`Bearer realm="https://${REALM_HOST}/token",service="${INTERCEPTED_HOST}"`);
    const image = bench.images.oci!;
    // skopeo goes to the real realm itself (an anonymous token, no access): trust the test CA too.
    const result = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'token-none'), { certDir: trustLayoverAndRealm(bench), allowFailure: true });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/unauthorized: registry\.test did not accept the client's credentials for repository bench\/oci/i);
    const anonymous = t.tokenRequests().filter((l) => l.account === '');
    expect(anonymous.length).toBeGreaterThan(0);
    expectNothingSecretLogged();
  }, 120_000);
});
