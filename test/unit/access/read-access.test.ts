import { describe, expect, it } from 'vitest';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { ReadAccess, type ReadAccessOptions } from '../../../src/access/read-access.js';
import type { CachedObject, ProbeCredential, ProbeResult, UpstreamProbe } from '../../../src/access/upstream-probe.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, meta, openCache } from '../cache/cache-fixture.js';

// The decisions of ReadAccess against scripted upstream answers; the integration tests in
// test/integration/access ask the real registry the same questions.
const TARGET = { registry: 'registry.test', origin: 'https://registry.test' };
const NAME = 'team/app' as RepositoryName;
const CHALLENGE = 'Bearer realm="https://auth.registry.test/token",service="registry.test"';

/** Answers every HEAD with `answer(credential)` (a request to show the bytes too: a yes then shows them) and remembers who asked. */
function scriptedProbe(answer: (credential: ProbeCredential) => ProbeResult): { probe: UpstreamProbe; asked: string[] } {
  const asked: string[] = [];
  const head = async (_origin: string, _name: RepositoryName, _object: CachedObject, credential: ProbeCredential) => {
    asked.push(credential.kind);
    return answer(credential);
  };
  const proveHeld = async (origin: string, name: RepositoryName, object: CachedObject, credential: ProbeCredential): Promise<ProbeResult> => {
    const result = await head(origin, name, object, credential);
    return 'status' in result && result.status < 400 ? { ...result, shown: true } : result;
  };
  const probe = { head, proveHeld };
  return { probe: probe as unknown as UpstreamProbe, asked };
}

async function readAccess(options: Partial<ReadAccessOptions> & Pick<ReadAccessOptions, 'probe'>) {
  const { cache } = await openCache();
  const records = new AccessRecords(cache);
  const access = new ReadAccess({ records, clientAuthOn: false, layoverCredentials: () => false, ttlMs: 60_000, anonymousTtlMs: 60_000, failOpen: [], ...options });
  return { access, records, cache };
}

const { logger } = captureLogger('debug');
const object = (): CachedObject => ({ kind: 'blob', digest: blob(8).digest });

describe('ReadAccess', () => {
  it('with client authentication on, never hands the upstream\'s challenge to a client (it would take its Layover password there)', async () => {
    const { probe, asked } = scriptedProbe(() => ({ status: 401, challenge: CHALLENGE }));
    const { access } = await readAccess({ probe, clientAuthOn: true, layoverCredentials: () => true });
    const decision = await access.check(TARGET, NAME, object(), undefined, logger);
    expect(decision).toMatchObject({ allowed: false, error: { code: 'DENIED' } });
    expect(decision).not.toHaveProperty('challenge');
    expect(asked).toEqual(['layover']);
  });

  it('with client authentication off, passes the challenge on to a client without credentials', async () => {
    const { probe } = scriptedProbe(() => ({ status: 401, challenge: CHALLENGE }));
    const { access } = await readAccess({ probe });
    expect(await access.check(TARGET, NAME, object(), undefined, logger)).toMatchObject({ allowed: false, error: { code: 'UNAUTHORIZED' }, challenge: CHALLENGE });
  });

  it('asks with the client\'s own credentials once per repository while the answer holds', async () => {
    const { probe, asked } = scriptedProbe((c) => (c.kind === 'client' ? { status: 200 } : { status: 401 }));
    const { access, records } = await readAccess({ probe });
    const first = object();
    expect(await access.check(TARGET, NAME, first, 'Bearer client-token', logger)).toMatchObject({ allowed: true, why: 'checked' });
    expect(await access.check(TARGET, NAME, first, 'Bearer client-token', logger)).toMatchObject({ allowed: true });
    expect(asked).toEqual(['anonymous', 'client']);
    // The anonymous refusal came while the digest was not known in the repository: remembered, not written.
    expect(records.reach('anonymous', `registry.test/${NAME}` as never)).toBeUndefined();
  });

  it('keeps refusals for repositories a cached digest is not known in out of the index, and asks each only once', async () => {
    const { probe, asked } = scriptedProbe(() => ({ status: 401, challenge: CHALLENGE }));
    const { access, records, cache } = await readAccess({ probe });
    const cached = object();
    await records.addMember(cached.digest, repositoryKey(TARGET.origin, NAME));
    await records.addHolder(cached.digest, TARGET.origin);
    for (let i = 0; i < 50; i++) {
      const made = `made-up/name-${i}` as RepositoryName;
      expect(await access.check(TARGET, made, cached, undefined, logger)).toMatchObject({ allowed: false, error: { code: 'UNAUTHORIZED' } });
      await access.check(TARGET, made, cached, undefined, logger);
    }
    expect(asked).toHaveLength(50);
    expect(cache.recordKeys('access:anonymous:')).toEqual([]);
    // A refusal for the repository the digest is known in is written, as before.
    await access.check(TARGET, NAME, cached, undefined, logger);
    expect(records.reach('anonymous', repositoryKey(TARGET.origin, NAME))?.readable).toBe(false);
    // So is one for a repository already on record (it said yes once): the yes must not outlive it.
    const once = repositoryKey(TARGET.origin, 'was/public' as RepositoryName);
    await records.setReach('anonymous', once, true, Date.now() - 2 * 60 * 60_000);
    await access.check(TARGET, 'was/public' as RepositoryName, cached, undefined, logger);
    expect(records.reach('anonymous', once)?.readable).toBe(false);
  });

  it('fails closed when upstream cannot be asked, open where configured', async () => {
    const unreachable = (): ProbeResult => ({ unreachable: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    const closed = await readAccess({ probe: scriptedProbe(unreachable).probe });
    expect(await closed.access.check(TARGET, NAME, object(), 'Bearer t', logger)).toMatchObject({ allowed: false, error: { code: 'UNAVAILABLE' } });
    const open = await readAccess({ probe: scriptedProbe(unreachable).probe, failOpen: ['*.test'] });
    const member = object();
    await open.records.addMember(member.digest, repositoryKey(TARGET.origin, NAME));
    await open.records.addHolder(member.digest, TARGET.origin);
    expect(await open.access.check(TARGET, NAME, member, 'Bearer t', logger)).toMatchObject({ allowed: true, why: 'fail-open' });
    // Cached under another repository or registry: never served under this one on an outage's word.
    expect(await open.access.check(TARGET, NAME, object(), 'Bearer t', logger)).toMatchObject({ allowed: false, error: { code: 'UNAVAILABLE' } });
  });

  it('a read allowed by fail-open is no grant: once upstream answers again, the credential is asked again', async () => {
    let down = true;
    const { probe, asked } = scriptedProbe((c) => (down ? { status: 503 } : c.kind === 'client' ? { status: 401, challenge: CHALLENGE } : { status: 401 }));
    const { access, records } = await readAccess({ probe, failOpen: ['registry.test'] });
    const member = object();
    await records.addMember(member.digest, repositoryKey(TARGET.origin, NAME));
    await records.addHolder(member.digest, TARGET.origin);
    // Known not to be public: the client's own credential is what is asked.
    await records.setReach('anonymous', repositoryKey(TARGET.origin, NAME), false, Date.now());
    expect(await access.check(TARGET, NAME, member, 'Basic anything', logger)).toMatchObject({ allowed: true, why: 'fail-open' });
    down = false;
    expect(await access.check(TARGET, NAME, member, 'Basic anything', logger)).toMatchObject({ allowed: false, error: { code: 'UNAUTHORIZED' } });
    expect(asked.filter((kind) => kind === 'client')).toHaveLength(2);
  });

  it('fails open only when Layover\'s own question finds the upstream down, not when the client\'s credential gets no answer', async () => {
    // The client's own token is rate-limited (or its header makes the upstream fail); the upstream answers Layover.
    const { probe, asked } = scriptedProbe((c) => (c.kind === 'client' ? { status: 429 } : { status: 401, challenge: CHALLENGE }));
    const { access, records } = await readAccess({ probe, failOpen: ['registry.test'] });
    const member = object();
    await records.addMember(member.digest, repositoryKey(TARGET.origin, NAME));
    await records.addHolder(member.digest, TARGET.origin);
    await records.setReach('anonymous', repositoryKey(TARGET.origin, NAME), false, Date.now());
    expect(await access.check(TARGET, NAME, member, 'Bearer exhausted', logger)).toMatchObject({ allowed: false, error: { code: 'UNAVAILABLE' } });
    expect(asked).toEqual(['client', 'anonymous']);
  });

  it('fails open for the port ACCESS_CHECK_FAIL_OPEN names, not for the host\'s other ports', async () => {
    const down = (): ProbeResult => ({ status: 503 });
    const withPort = await readAccess({ probe: scriptedProbe(down).probe, failOpen: ['registry.test:5000'] });
    const member = object();
    for (const origin of ['https://registry.test', 'https://registry.test:5000']) {
      await withPort.records.addMember(member.digest, repositoryKey(origin, NAME));
      await withPort.records.addHolder(member.digest, origin);
    }
    const at5000 = { registry: 'registry.test:5000', origin: 'https://registry.test:5000' };
    expect(await withPort.access.check(at5000, NAME, member, 'Bearer t', logger)).toMatchObject({ allowed: true, why: 'fail-open' });
    expect(await withPort.access.check(TARGET, NAME, member, 'Bearer t', logger)).toMatchObject({ allowed: false, error: { code: 'UNAVAILABLE' } });
    // 443 written out: the registry named without a port, not its other ports.
    const with443 = await readAccess({ probe: scriptedProbe(down).probe, failOpen: ['registry.test:443'] });
    for (const origin of ['https://registry.test', 'https://registry.test:5000']) {
      await with443.records.addMember(member.digest, repositoryKey(origin, NAME));
      await with443.records.addHolder(member.digest, origin);
    }
    expect(await with443.access.check(TARGET, NAME, member, 'Bearer t', logger)).toMatchObject({ allowed: true, why: 'fail-open' });
    expect(await with443.access.check(at5000, NAME, member, 'Bearer t', logger)).toMatchObject({ allowed: false, error: { code: 'UNAVAILABLE' } });
  });

  it('takes a registry\'s HEAD only about digests it gave Layover; any other registry must show the bytes', async () => {
    const asked: string[] = [];
    const { access, records } = await readAccess({
      probe: {
        head: async (origin: string) => (asked.push(`head ${origin}`), { status: 200 }),
        proveHeld: async (origin: string) => (asked.push(`prove ${origin}`), origin === 'https://liar.test' ? { status: 404, refuted: true } : { status: 200, shown: true }),
      } as unknown as UpstreamProbe,
    });
    const cached = object();
    await records.addMember(cached.digest, repositoryKey(TARGET.origin, NAME));
    await records.addHolder(cached.digest, TARGET.origin);
    const { logger: log, lines } = captureLogger('debug');
    // Another repository of the registry that gave it: its word is taken.
    expect(await access.check(TARGET, 'team/other' as RepositoryName, cached, undefined, log)).toMatchObject({ allowed: true });
    // A registry that says yes to anything: not served, and the operator is told.
    const liar = { registry: 'liar.test', origin: 'https://liar.test' };
    expect(await access.check(liar, NAME, cached, undefined, log)).toMatchObject({ allowed: false, error: { code: 'BLOB_UNKNOWN' } });
    expect(records.isMember(cached.digest, repositoryKey(liar.origin, NAME))).toBe(false);
    expect(lines.filter((line) => /could not show its bytes/.test(String(line.msg)))).toHaveLength(1);
    // Each try is a guess at a window: the answer stands for a while, without asking again.
    expect(await access.check(liar, 'team/again' as RepositoryName, cached, undefined, log)).toMatchObject({ allowed: false, error: { code: 'BLOB_UNKNOWN' } });
    // A registry that shows the bytes is served, and its word counts from then on.
    const mirror = { registry: 'mirror.test', origin: 'https://mirror.test' };
    expect(await access.check(mirror, NAME, cached, undefined, log)).toMatchObject({ allowed: true });
    expect(records.heldBy(cached.digest, mirror)).toBe(true);
    expect(await access.check(mirror, 'team/other' as RepositoryName, cached, undefined, log)).toMatchObject({ allowed: true });
    expect(asked).toEqual(['head https://registry.test', 'prove https://liar.test', 'prove https://mirror.test', 'head https://mirror.test']);
  });

  it('counts a registry\'s membership only once it holds the bytes: a member record alone does not serve', async () => {
    const { probe, asked } = scriptedProbe(() => ({ status: 404, refuted: true }));
    const { access, records } = await readAccess({ probe });
    const cached = object();
    // Recorded in liar.test's repository when a download from it began (it failed), while registry.test gave the verified bytes.
    const liar = { registry: 'liar.test', origin: 'https://liar.test' };
    await records.addMember(cached.digest, repositoryKey(liar.origin, NAME));
    await records.setReach('anonymous', repositoryKey(liar.origin, NAME), true, Date.now());
    await records.addHolder(cached.digest, TARGET.origin);
    expect(access.allowedNow(liar, NAME, cached, undefined)).toBeUndefined();
    expect(await access.check(liar, NAME, cached, undefined, logger)).toMatchObject({ allowed: false, error: { code: 'BLOB_UNKNOWN' } });
    expect(asked).toEqual(['anonymous']);
  });

  it('with no bytes here the HEAD answers, but bytes of another registry that arrive meanwhile must be shown', async () => {
    const { cache } = await openCache();
    const records = new AccessRecords(cache);
    const cached = blob(64);
    const answers: ProbeResult[] = [];
    const probe = {
      proveHeld: async (): Promise<ProbeResult> => {
        if (answers.length === 0) {
          // No bytes here when asked; while the HEAD was on its way, another registry's copy was cached.
          await cache.put(cached.digest, cached.bytes, meta({ size: cached.bytes.length, source: 'other.test/team/app' }));
          answers.push({ status: 200 });
        } else answers.push({ status: 404, refuted: true });
        return answers.at(-1)!;
      },
    } as unknown as UpstreamProbe;
    const access = new ReadAccess({ records, probe, clientAuthOn: false, layoverCredentials: () => false, ttlMs: 60_000, anonymousTtlMs: 60_000, failOpen: [] });
    expect(await access.check(TARGET, NAME, { kind: 'blob', digest: cached.digest }, undefined, logger)).toMatchObject({ allowed: false, error: { code: 'BLOB_UNKNOWN' } });
    expect(answers).toHaveLength(2);
  });
});
