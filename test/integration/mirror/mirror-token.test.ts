import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { startContainerd } from '../../bench/containerd.js';
import { runCli } from '../../helpers/run-cli.js';
import { expectNoSecretsInLog, startTokenBench, type TokenBench } from '../auth/auth-bench.js';
import { curl } from '../proxy/curl.js';

// containerd as a mirror client of a registry with token authentication: Layover holds alice's
// account (bench/* only), bob may read a/*. Challenges sent through the mirror point at Layover's
// token endpoint with the same `ns`, which relays a client's own credentials to the real realm.
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
const ALICE = ['alice', randomBytes(12).toString('hex')] as const;
const BOB = ['bob', randomBytes(12).toString('hex')] as const;

let t: TokenBench;
beforeAll(async () => {
  t = await startTokenBench(
    {
      [PUSHER[0]]: { password: PUSHER[1], grants: { '': ['pull', 'push'] } },
      [ALICE[0]]: { password: ALICE[1], grants: { 'bench/': ['pull'] } },
      [BOB[0]]: { password: BOB[1], grants: { 'a/': ['pull'] } },
    },
    { images: ['oci', 'nested'], layover: { env: { AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${ALICE[0]}:${ALICE[1]}` } } },
  );
}, 180_000);
afterAll(() => t?.bench.close());

describe('mirror mode with upstream token authentication', () => {
  it("containerd pulls through ?ns= with Layover's account", async () => {
    const { bench } = t;
    const hostsDir = join(bench.sandbox.dir, 'certs.d');
    const flags = ['--data-dir', bench.layover!.dataDir, '--advertise', '127.0.0.1', '--upstream-dns', '127.0.0.1:9', '--registries', INTERCEPTED_HOST, '--dir', hostsDir];
    expect(runCli(['containerd-config', ...flags]).status).toBe(0);
    const noDns = join(bench.sandbox.dir, 'resolv.nothing.conf');
    writeFileSync(noDns, 'nameserver 127.0.0.9\noptions timeout:1 attempts:1\n');
    const containerd = await startContainerd(bench.sandbox);
    const image = bench.images.oci!;
    await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', image.ref(INTERCEPTED_HOST)], { resolvConf: noDns });
    expect(t.tokenRequests().some((l) => l.account === ALICE[0] && l.scopes?.includes(`repository:${image.repository}:pull`))).toBe(true);
  }, 180_000);

  it("points challenges at Layover's endpoint with the ns, which relays a client's own credentials", async () => {
    const { bench } = t;
    const nested = bench.images.nested!;
    const refused = await curl(bench, `https://127.0.0.1/v2/${nested.repository}/manifests/${nested.tag}?ns=${INTERCEPTED_HOST}`);
    expect(refused.status).toBe(401);
    const challenge = refused.headers['www-authenticate'] ?? '';
    expect(challenge).toContain(`realm="https://127.0.0.1/_layover/token?ns=${INTERCEPTED_HOST}"`);
    expect(challenge).toContain(`scope="repository:${nested.repository}:pull"`);

    const service = /service="([^"]*)"/.exec(challenge)?.[1] ?? '';
    const tokenUrl = `https://127.0.0.1/_layover/token?ns=${INTERCEPTED_HOST}&service=${encodeURIComponent(service)}&scope=${encodeURIComponent(`repository:${nested.repository}:pull`)}`;
    const answer = await curl(bench, tokenUrl, ['-u', `${BOB[0]}:${BOB[1]}`]);
    expect(answer.status).toBe(200);
    // The realm's answer, relayed from Layover's origin: never a page there.
    expect(answer.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; sandbox" });
    const token = (JSON.parse(answer.body.toString()) as { token: string }).token;
    const relayed = t.tokenRequests().find((l) => l.token === token);
    expect(relayed).toMatchObject({ account: BOB[0], scopes: [`repository:${nested.repository}:pull`] });

    const manifest = await curl(bench, `https://127.0.0.1/v2/${nested.repository}/manifests/${nested.tag}?ns=${INTERCEPTED_HOST}`, ['-H', `authorization: Bearer ${token}`, '-H', `accept: ${nested.mediaType}`]);
    expect(manifest.status).toBe(200);
    expect(manifest.body.toString()).toBe(nested.raw);
    const tokens = t.tokenRequests().flatMap((l) => (l.token ? [l.token] : []));
    expectNoSecretsInLog(bench, [[...ALICE], [...BOB], ...tokens]);
  }, 60_000);
});
