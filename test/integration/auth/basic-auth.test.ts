import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { dirContents } from '../proxy/dir-compare.js';
import { curl } from '../proxy/curl.js';
import { expectNoSecretsInLog, FIXTURES } from './auth-bench.js';

// The upstream registry requires Basic authentication (htpasswd); skopeo pulls through Layover,
// which holds (or does not hold) credentials for it.
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
const ALICE = ['alice', randomBytes(12).toString('hex')] as const;
const WRONG = randomBytes(12).toString('hex');
const SECRETS: Array<[string, string]> = [[...PUSHER], [...ALICE], [ALICE[0], WRONG]];

let bench: Bench;
beforeAll(async () => {
  bench = await startBench({
    images: ['oci', 'nested'],
    auth: { htpasswd: { [PUSHER[0]]: PUSHER[1], [ALICE[0]]: ALICE[1] } },
    layover: { env: { AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${ALICE[0]}:${ALICE[1]}` } },
  });
}, 180_000);
afterAll(() => bench?.close());

const restartLayover = async (options: Parameters<Bench['startLayover']>[0] = {}) => {
  await bench.layover?.stop();
  return bench.startLayover(options);
};

describe('upstream Basic authentication', () => {
  it('skopeo without credentials of its own pulls with the AUTH_REGISTRIES entry', async () => {
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'basic-via');
    const direct = join(bench.sandbox.dir, 'basic-direct');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via);
    await bench.pullDirect(image.ref('registry-direct.test'), direct);
    expect(dirContents(via)).toEqual(dirContents(direct));
    const injected = bench.layover!.logs().filter((l) => l.msg === 'request' && l.credential === `${ALICE[0]}@${INTERCEPTED_HOST}`);
    expect(injected.map((l) => l.status)).toContain(200);
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);

  it('without the entry the pull fails with UNAUTHORIZED naming the registry', async () => {
    await restartLayover();
    const image = bench.images.oci!;
    const result = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'basic-none'), { allowFailure: true });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/unauthorized: registry\.test requires authentication for repository bench\/oci/i);
    // The same answer as a client sees it: the OCI error, and the challenge so it could log in.
    const answer = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${image.repository}/manifests/v1`);
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toMatch(/^Basic /);
    expect(JSON.parse(answer.body.toString()).errors[0]).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining(INTERCEPTED_HOST) });
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);

  it("a client's own credentials win over the injected ones; a refused injected credential is named in the log", async () => {
    // Layover's entry has a wrong password: only the client's own credentials can succeed.
    await restartLayover({ env: { AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${ALICE[0]}:${WRONG}` } });
    const image = bench.images.nested!;
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'basic-own'), { creds: `${PUSHER[0]}:${PUSHER[1]}` });

    const refused = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'basic-refused'), { allowFailure: true });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/registry\.test did not accept the credentials Layover holds for repository a\/b\/c/);
    const warning = await bench.layover!.waitForLog((l) => l.msg === 'upstream refused the configured credential');
    expect(warning).toMatchObject({ registry: INTERCEPTED_HOST, credential: `${ALICE[0]}@${INTERCEPTED_HOST}`, status: 401 });
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);

  it('a credential helper is asked, its answer used, and asked again after a 401', async () => {
    const calls = join(bench.sandbox.dir, 'helper-calls');
    writeFileSync(calls, '');
    const config = join(bench.sandbox.dir, 'helper-config.yaml');
    writeFileSync(config, `authRegistries:\n  - {registry: ${INTERCEPTED_HOST}, helper: layover-test, maxAge: 1h}\n`);
    await restartLayover({
      flags: { config },
      env: {
        PATH: `${FIXTURES}:${process.env.PATH}`,
        LAYOVER_TEST_HELPER_CALLS: calls,
        LAYOVER_TEST_HELPER_USER: ALICE[0],
        LAYOVER_TEST_HELPER_STALE: WRONG,
        LAYOVER_TEST_HELPER_SECRET: ALICE[1],
      },
    });
    bench.registry.clearRequests();
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'helper-via');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via);
    expect(Object.keys(dirContents(via)).length).toBeGreaterThan(2);
    // Asked twice, for the registry: the stale answer was refused once, the fresh one served the pull.
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toEqual([INTERCEPTED_HOST, INTERCEPTED_HOST]);
    await bench.registry.sync();
    const manifestAnswers = bench.registry.requests().filter((r) => r.path.includes('/manifests/') && r.userAgent !== 'layover');
    expect(manifestAnswers.map((r) => r.status)).toContain(401);
    expect(manifestAnswers.at(-1)!.status).toBe(200);
    const warning = bench.layover!.logs().find((l) => l.msg === 'upstream refused the configured credential');
    expect(warning).toBeUndefined(); // the retry succeeded: nothing reached the client
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);
});
