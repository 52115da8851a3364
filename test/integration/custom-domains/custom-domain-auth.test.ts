import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { curl } from '../proxy/curl.js';
import { dirContents } from '../proxy/dir-compare.js';
import { expectNoSecretsInLog, startTokenBench, type TokenBench } from '../auth/auth-bench.js';

// The upstream registry in token mode (test/fixtures/token-server.mjs as its realm). Layover holds
// alice's account (bench/* only); bob may read a/*. The custom domain maps
// docker.example.test/team/app/<x> -> registry.test/bench/<x> and docker.example.test/deep/<x> ->
// registry.test/a/b/<x>: names differ upstream, so Layover must handle the token flow itself.
const DOMAIN = 'docker.example.test';
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
    { images: ['oci', 'nested'], layover: false },
  );
  const config = join(t.bench.sandbox.dir, 'layover.yaml');
  writeFileSync(config, ['customDomains:', `  - {from: ${DOMAIN}/team/app, to: registry.test/bench}`, `  - {from: ${DOMAIN}/deep, to: registry.test/a/b}`, ''].join('\n'));
  await t.bench.startLayover({ flags: { config }, env: { AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${ALICE[0]}:${ALICE[1]}` } });
}, 180_000);
afterAll(() => t?.bench.close());

describe('a custom domain in front of a registry with token authentication', () => {
  it("a client without credentials pulls with Layover's account: the token scope is the upstream's name", async () => {
    const { bench } = t;
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'domain-token-oci');
    await bench.pullViaLayover(`${DOMAIN}/team/app/oci:${image.tag}`, via);
    expect(dirContents(via)['manifest.json']?.toString()).toBe(image.raw);
    const alices = t.tokenRequests().filter((l) => l.account === ALICE[0]);
    expect(alices.some((l) => l.scopes?.includes(`repository:${image.repository}:pull`))).toBe(true);
    expect(t.tokenRequests().some((l) => l.scopes?.some((s) => s.includes('team/app')))).toBe(false);
  }, 120_000);

  it('challenges point at Layover on the custom domain, with the scope in the client names', async () => {
    const res = await curl(t.bench, `https://${DOMAIN}/v2/deep/c/manifests/v1`);
    expect(res.status).toBe(401);
    const challenge = res.headers['www-authenticate'] ?? '';
    expect(challenge).toContain(`realm="https://${DOMAIN}/_layover/token/deep"`);
    expect(challenge).toContain('scope="repository:deep/c:pull"');
    expect(challenge).not.toContain('a/b/c');
    expect(challenge).not.toContain('auth.registry.test');
  }, 60_000);

  it("a client's own credentials get a token for the upstream name through Layover's endpoint", async () => {
    const { bench } = t;
    const nested = bench.images.nested!;
    const via = join(bench.sandbox.dir, 'domain-token-bob');
    // skopeo asks the realm of its ping (the first entry's) for deep/c too: scopes map by their own entry.
    await bench.pullViaLayover(`${DOMAIN}/deep/c:${nested.tag}`, via, { creds: `${BOB[0]}:${BOB[1]}` });
    expect(dirContents(via)['manifest.json']?.toString()).toBe(nested.raw);
    const bobs = t.tokenRequests().filter((l) => l.account === BOB[0]);
    expect(bobs.some((l) => l.scopes?.includes('repository:a/b/c:pull'))).toBe(true);
    expect(bobs.some((l) => l.scopes?.some((s) => s.includes('deep/')))).toBe(false);
    expect(bench.layover!.logs().some((l) => l.msg === 'request' && l.host === DOMAIN && l.tokenRequest === 'relayed')).toBe(true);
    const tokens = t.tokenRequests().flatMap((l) => (l.token ? [l.token] : []));
    expectNoSecretsInLog(bench, [[...ALICE], [...BOB], ...tokens]);
  }, 120_000);
});
