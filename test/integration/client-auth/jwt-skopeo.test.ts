import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { type FixtureProcess, startFixture } from '../../bench/fixture-process.js';
import { expectNoSecretsInLog } from '../auth/auth-bench.js';
import { dirContents } from '../proxy/dir-compare.js';
import { OIDC_ISSUER_SCRIPT } from './oidc-issuer-process.js';

// CLIENT_AUTH=jwt end to end: a CI job's OIDC token (from test/fixtures/oidc-issuer.mjs, serving
// https://idp.test on 127.0.0.6 inside the bench sandbox) as the password of skopeo --src-creds.
// Layover reaches the issuer like an upstream: through the sandbox's dnsmasq and trusting the test CA.
const ISSUER = 'https://idp.test';
const ISSUER_ADDRESS = '127.0.0.6';
const AUDIENCE = 'layover-ci';

let bench: Bench;
let idp: FixtureProcess;
let config: string;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested'], layover: false, extraRecords: { 'idp.test': [ISSUER_ADDRESS] } });
  const tls = await bench.ca.issue('idp', ['idp.test', ISSUER_ADDRESS]);
  idp = await startFixture(bench.sandbox, OIDC_ISSUER_SCRIPT, ['--listen', `${ISSUER_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--issuer', ISSUER]);
  config = join(bench.sandbox.dir, 'jwt.yaml');
  writeFileSync(config, ['accessRules:', '  - {groups: [builders], repositories: ["bench/**"], actions: [pull]}'].join('\n'));
  await bench.startLayover({ flags: { config }, env: { CLIENT_AUTH: 'jwt', JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE } });
}, 180_000);
afterAll(() => bench?.close());

/** A token from the fixture issuer, asked for with curl inside the sandbox. */
async function idToken(claims: Record<string, unknown>): Promise<string> {
  const body = JSON.stringify({ claims: { sub: 'project/42:ref/main', aud: AUDIENCE, groups: ['builders'], ...claims } });
  const res = await bench.sandbox.exec('curl', ['-sS', '--fail', '--cacert', bench.ca.certFile, '-X', 'POST', '--data-binary', body, `https://${ISSUER_ADDRESS}/test/sign`]);
  if (res.code !== 0) throw new Error(`sign: ${res.stderr}`);
  return (JSON.parse(res.stdout) as { token: string }).token;
}

describe('client authentication with OIDC tokens (CLIENT_AUTH=jwt), through skopeo', () => {
  it('skopeo --src-creds <anything>:<jwt> pulls through Layover; the user is the token subject', async () => {
    const token = await idToken({});
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'jwt-pull');
    const direct = join(bench.sandbox.dir, 'direct');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { creds: `ci:${token}` });
    await bench.pullDirect(image.ref('registry-direct.test'), direct);
    expect(dirContents(via)).toEqual(dirContents(direct));
    const lines = bench.layover!.logs().filter((l) => l.msg === 'request' && l.user === 'project/42:ref/main');
    expect(lines.some((l) => l.status === 200)).toBe(true);
    // Discovery and the key set were fetched once; every other request used the cached keys.
    expect(idp.requests().filter((r) => r.path === '/.well-known/openid-configuration')).toHaveLength(1);
    expect(idp.requests().filter((r) => r.path === '/jwks')).toHaveLength(1);
    expectNoSecretsInLog(bench, [token, ['ci', token]]);
  }, 120_000);

  it('a token for another audience, an expired one, or one without the group is refused', async () => {
    const image = bench.images.oci!;
    const now = Math.floor(Date.now() / 1000);
    bench.registry.clearRequests();
    for (const [name, claims] of Object.entries({ audience: { aud: 'someone-else' }, expired: { iat: now - 900, exp: now - 600 } })) {
      const result = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, `refused-${name}`), { allowFailure: true, creds: `ci:${await idToken(claims)}` });
      expect(result.code, name).not.toBe(0);
      expect(result.stderr, name).toMatch(/unauthorized/i);
    }
    const outsider = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'refused-group'), { allowFailure: true, creds: `ci:${await idToken({ groups: ['visitors'] })}` });
    expect(outsider.code).not.toBe(0);
    expect(outsider.stderr).toMatch(/denied/i);
    await bench.registry.sync();
    expect(bench.registry.requests()).toEqual([]);
  }, 120_000);

  it('with CLIENT_AUTH_CHALLENGE=bearer skopeo trades the JWT for a token of Layover at https://docker.proxy/token', async () => {
    await bench.layover!.stop();
    await bench.startLayover({ flags: { config }, env: { CLIENT_AUTH: 'jwt', JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, CLIENT_AUTH_CHALLENGE: 'bearer' } });
    const token = await idToken({});
    const image = bench.images.nested!;
    const deniedByRule = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'bearer-denied'), { allowFailure: true, creds: `ci:${token}` });
    expect(deniedByRule.code).not.toBe(0); // a/b/c is not under bench/**
    const via = join(bench.sandbox.dir, 'bearer-pull');
    await bench.pullViaLayover(bench.images.oci!.ref(INTERCEPTED_HOST), via, { creds: `ci:${token}` });
    expect(Object.keys(dirContents(via)).length).toBeGreaterThan(2);
    const logs = bench.layover!.logs().filter((l) => l.msg === 'request');
    const issued = logs.filter((l) => l.host === 'docker.proxy' && l.tokenRequest === 'issued');
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.some((l) => l.granted === 'repository:bench/oci:pull')).toBe(true);
    expect(issued.some((l) => l.granted === '')).toBe(true); // a/b/c: asked for, dropped
    expect(logs.some((l) => l.host === INTERCEPTED_HOST && l.user === 'project/42:ref/main' && l.status === 200)).toBe(true);
    expectNoSecretsInLog(bench, [token, ['ci', token]]);
    // Nor the tokens Layover issued, which the test never sees: no JWT at all.
    expect(JSON.stringify(bench.layover!.logs()) + bench.layover!.output()).not.toMatch(/eyJ[\w-]{10,}\.eyJ/);
  }, 120_000);
});
