import { describe, expect, it } from 'vitest';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { ReadAccess, type ReadAccessOptions } from '../../../src/access/read-access.js';
import type { CachedObject, ProbeResult, UpstreamProbe } from '../../../src/access/upstream-probe.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, openCache } from '../cache/cache-fixture.js';

// ReadAccess.allowedNow answers a hit at once (src/proxy/hit-path.ts, src/proxy/read-guard.ts) from the
// same records check reads. Here every combination of records is set up and both are asked: whenever
// allowedNow says yes, check says the same yes; whenever it cannot say, check must ask upstream or refuse.
const TARGET = { registry: 'registry.test', origin: 'https://registry.test' };
const NAME = 'team/app' as RepositoryName;
const REPOSITORY = repositoryKey(TARGET.origin, NAME);
const { logger } = captureLogger('debug');

type Reach = 'none' | 'readable' | 'refused' | 'stale';

interface Case {
  member: boolean;
  /** Which upstream gave Layover the bytes: none recorded (an older record), this one, another one only. */
  holder: 'none' | 'this' | 'other';
  anonymous: Reach;
  layover: Reach;
  clientAuthOn: boolean;
  layoverCredentials: boolean;
  authorization: string | undefined;
}

function* cases(): Generator<Case> {
  const reaches: Reach[] = ['none', 'readable', 'refused', 'stale'];
  for (const member of [true, false])
    for (const holder of ['none', 'this', 'other'] as const)
    for (const anonymous of reaches)
      for (const layover of reaches)
        for (const clientAuthOn of [false, true])
          for (const layoverCredentials of [false, true])
            for (const authorization of [undefined, 'Bearer client-token']) yield { member, holder, anonymous, layover, clientAuthOn, layoverCredentials, authorization };
}

async function setUp(c: Case) {
  const { cache } = await openCache();
  const records = new AccessRecords(cache);
  const asked: string[] = [];
  // Upstream says yes to everyone: a check that asks is told yes, so only its asking tells it apart.
  const yes = async (_o: string, _n: RepositoryName, _x: CachedObject, credential: { kind: string }): Promise<ProbeResult> => (asked.push(credential.kind), { status: 200 });
  const probe = { head: yes, proveHeld: yes };
  const now = Date.now();
  const options: ReadAccessOptions = { records, probe: probe as unknown as UpstreamProbe, clientAuthOn: c.clientAuthOn, layoverCredentials: () => c.layoverCredentials, ttlMs: 60_000, anonymousTtlMs: 60_000, failOpen: [], now: () => now };
  const access = new ReadAccess(options);
  const object: CachedObject = { kind: 'blob', digest: blob(8).digest };
  if (c.member) await records.addMember(object.digest, REPOSITORY);
  if (c.holder !== 'none') await records.addHolder(object.digest, c.holder === 'this' ? TARGET.origin : 'https://other.test');
  for (const [reader, reach] of [['anonymous', c.anonymous], ['layover', c.layover]] as const) {
    if (reach !== 'none') await records.setReach(reader, REPOSITORY, reach !== 'refused', reach === 'stale' ? now - 120_000 : now);
  }
  return { access, object, asked };
}

describe('ReadAccess.allowedNow', () => {
  it('says yes only where check says the same yes without asking upstream, over every combination of records', async () => {
    let yes = 0;
    for (const c of cases()) {
      const { access, object, asked } = await setUp(c);
      const now = access.allowedNow(TARGET, NAME, object, c.authorization);
      const decision = await access.check(TARGET, NAME, object, c.authorization, logger);
      if (now !== undefined) {
        yes++;
        expect(decision, JSON.stringify(c)).toEqual({ allowed: true, why: now });
        expect(asked, JSON.stringify(c)).toEqual([]);
      } else {
        // Without an answer in memory, check asks upstream or refuses: it never says yes from the same records alone.
        expect(asked.length > 0 || !decision.allowed, JSON.stringify(c)).toBe(true);
      }
    }
    // The fast answers exist: policy, anonymous and layover records.
    expect(yes).toBeGreaterThan(10);
  });

  it('knows a client\'s own grant once a check with its credentials was told yes, and not for another credential', async () => {
    const { cache } = await openCache();
    const records = new AccessRecords(cache);
    const object: CachedObject = { kind: 'blob', digest: blob(8).digest };
    await records.addMember(object.digest, REPOSITORY);
    await records.addHolder(object.digest, TARGET.origin);
    await records.setReach('anonymous', REPOSITORY, false, Date.now());
    const probe = { head: async (): Promise<ProbeResult> => ({ status: 200 }) };
    const access = new ReadAccess({ records, probe: probe as unknown as UpstreamProbe, clientAuthOn: false, layoverCredentials: () => false, ttlMs: 60_000, anonymousTtlMs: 60_000, failOpen: [] });
    expect(access.allowedNow(TARGET, NAME, object, 'Bearer mine')).toBeUndefined();
    expect(await access.check(TARGET, NAME, object, 'Bearer mine', logger)).toEqual({ allowed: true, why: 'checked' });
    expect(access.allowedNow(TARGET, NAME, object, 'Bearer mine')).toBe('checked');
    expect(access.allowedNow(TARGET, NAME, object, 'Bearer theirs')).toBeUndefined();
    expect(access.allowedNow(TARGET, NAME, object, undefined)).toBeUndefined();
  });
});
