import { describe, expect, it } from 'vitest';
import type { ClientIdentity } from '../../../src/client-auth/authenticator.js';
import { RememberedCredentials } from '../../../src/client-auth/authenticators/remembered.js';

const alice: ClientIdentity = { user: 'alice', groups: [] };

/** A check that counts its calls and answers `result` after `delayMs`. */
function counting(result: ClientIdentity | null, delayMs = 0): { check: () => Promise<ClientIdentity | null>; calls: () => number } {
  let calls = 0;
  return {
    check: async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return result;
    },
    calls: () => calls,
  };
}

describe('RememberedCredentials', () => {
  it('remembers a success until the TTL passes, keyed by user and password together', async () => {
    const remembered = new RememberedCredentials({ ttlMs: 80 });
    const ok = counting(alice);
    expect(await remembered.check('alice', 'pw', ok.check)).toBe(alice);
    expect(await remembered.check('alice', 'pw', ok.check)).toBe(alice);
    expect(ok.calls()).toBe(1);
    await remembered.check('alice', 'other', ok.check);
    await remembered.check('alic', 'epw', ok.check); // same concatenation, different pair
    expect(ok.calls()).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await remembered.check('alice', 'pw', ok.check);
    expect(ok.calls()).toBe(4);
  });

  it('never remembers a failure, and remembers nothing with a TTL of 0', async () => {
    const remembered = new RememberedCredentials({ ttlMs: 60_000 });
    const bad = counting(null);
    await remembered.check('alice', 'wrong', bad.check);
    await remembered.check('alice', 'wrong', bad.check);
    expect(bad.calls()).toBe(2);
    const off = new RememberedCredentials({ ttlMs: 0 });
    const ok = counting(alice);
    await off.check('alice', 'pw', ok.check);
    await off.check('alice', 'pw', ok.check);
    expect(ok.calls()).toBe(2);
  });

  it('shares one check among concurrent requests with the same credentials', async () => {
    const remembered = new RememberedCredentials({ ttlMs: 60_000 });
    const slow = counting(alice, 30);
    const results = await Promise.all(Array.from({ length: 20 }, () => remembered.check('alice', 'pw', slow.check)));
    expect(results.every((r) => r === alice)).toBe(true);
    expect(slow.calls()).toBe(1);
  });

  it('is bounded: past maxEntries the oldest success goes', async () => {
    const remembered = new RememberedCredentials({ ttlMs: 60_000, maxEntries: 3 });
    const ok = counting(alice);
    for (const password of ['1', '2', '3', '4']) await remembered.check('alice', password, ok.check);
    expect(remembered.size).toBe(3);
    await remembered.check('alice', '4', ok.check);
    expect(ok.calls()).toBe(4);
    await remembered.check('alice', '1', ok.check);
    expect(ok.calls()).toBe(5);
  });

  it('clear() forgets, also a check that was in flight when it was called', async () => {
    const remembered = new RememberedCredentials({ ttlMs: 60_000 });
    const slow = counting(alice, 20);
    const inFlight = remembered.check('alice', 'pw', slow.check);
    remembered.clear();
    await inFlight;
    await remembered.check('alice', 'pw', slow.check);
    expect(slow.calls()).toBe(2);
  });
});
