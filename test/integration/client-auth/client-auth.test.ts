import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { expectNoSecretsInLog } from '../auth/auth-bench.js';
import { dirContents } from '../proxy/dir-compare.js';

// The upstream registry requires Basic authentication and Layover holds its credential
// (AUTH_REGISTRIES); clients must authenticate to Layover itself (CLIENT_AUTH=htpasswd) with
// other credentials, which therefore must never be forwarded upstream.
const UPSTREAM = ['pusher', randomBytes(12).toString('hex')] as const;
const CAROL = ['carol', randomBytes(12).toString('hex')] as const;
const DAVE = ['dave', randomBytes(12).toString('hex')] as const;
const SECRETS: Array<[string, string]> = [[...UPSTREAM], [...CAROL], [...DAVE], [CAROL[0], 'wrong-password']];

let bench: Bench;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested'], auth: { htpasswd: { [UPSTREAM[0]]: UPSTREAM[1] } }, layover: false });
  const htpasswd = join(bench.sandbox.dir, 'clients.htpasswd');
  const line = (user: string, password: string): string => execFileSync('htpasswd', ['-Bbn', '-C', '5', user, password], { encoding: 'utf8' }).trim();
  writeFileSync(htpasswd, `${line(...CAROL)}\n${line(...DAVE)}\n`);
  const config = join(bench.sandbox.dir, 'client-auth.yaml');
  writeFileSync(
    config,
    ['clientGroups: {builders: [carol]}', 'accessRules:', '  - {groups: [builders], repositories: ["bench/**", "a/**"], actions: [pull]}', '  - {users: [dave], repositories: ["a/**"], actions: [pull]}'].join('\n'),
  );
  await bench.startLayover({
    flags: { config },
    env: { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd, AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${UPSTREAM[0]}:${UPSTREAM[1]}` },
  });
}, 180_000);
afterAll(() => bench?.close());

const upstreamRequests = async (): Promise<number> => {
  await bench.registry.sync();
  return bench.registry.requests().length;
};

describe('client authentication with htpasswd, through skopeo', () => {
  it('skopeo without credentials fails with UNAUTHORIZED and nothing reaches the upstream', async () => {
    bench.registry.clearRequests();
    const image = bench.images.oci!;
    const result = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'anonymous'), { allowFailure: true });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/unauthorized/i);
    const wrong = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'wrong'), { allowFailure: true, creds: `${CAROL[0]}:wrong-password` });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized/i);
    expect(await upstreamRequests()).toBe(0);
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);

  it('with --src-creds pulls through Layover (upstream authorized by Layover own credential), then from the cache', async () => {
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'carol-1');
    const direct = join(bench.sandbox.dir, 'direct');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { creds: `${CAROL[0]}:${CAROL[1]}` });
    await bench.pullDirect(image.ref('registry-direct.test'), direct, { creds: `${UPSTREAM[0]}:${UPSTREAM[1]}` });
    expect(dirContents(via)).toEqual(dirContents(direct));
    const lines = bench.layover!.logs().filter((l) => l.msg === 'request' && l.user === CAROL[0]);
    expect(lines.some((l) => l.credential === `${UPSTREAM[0]}@${INTERCEPTED_HOST}` && l.status === 200)).toBe(true);

    bench.registry.clearRequests();
    const again = join(bench.sandbox.dir, 'carol-2');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), again, { creds: `${CAROL[0]}:${CAROL[1]}` });
    expect(dirContents(again)).toEqual(dirContents(direct));
    await bench.registry.sync();
    expect(bench.registry.requests().filter((r) => r.path.includes('/blobs/'))).toEqual([]);
    expect(bench.layover!.logs().filter((l) => l.msg === 'request' && l.user === CAROL[0] && l.cache === 'hit').length).toBeGreaterThan(0);
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);

  it('a user without a pull rule for the repository gets DENIED, even for cached content', async () => {
    const image = bench.images.oci!; // cached by the test before
    bench.registry.clearRequests();
    const denied = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'dave-denied'), { allowFailure: true, creds: `${DAVE[0]}:${DAVE[1]}` });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/denied/i);
    expect(await upstreamRequests()).toBe(0);
    const refusals = bench.layover!.logs().filter((l) => l.msg === 'request' && l.user === DAVE[0] && l.status === 403);
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.every((l) => l.bytes === undefined || Number(l.bytes) < 1024)).toBe(true);

    const nested = bench.images.nested!;
    const allowed = join(bench.sandbox.dir, 'dave-allowed');
    await bench.pullViaLayover(nested.ref(INTERCEPTED_HOST), allowed, { creds: `${DAVE[0]}:${DAVE[1]}` });
    expect(Object.keys(dirContents(allowed)).length).toBeGreaterThan(2);
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);
});
