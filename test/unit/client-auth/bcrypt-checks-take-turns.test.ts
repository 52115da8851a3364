import bcrypt from 'bcryptjs';
import { afterEach, expect, it } from 'vitest';
import { BcryptChecks } from '../../../src/client-auth/authenticators/bcrypt-checks.js';

// One worker compares, one check at a time: who waits for whom is the queue's to decide. A client
// sending new wrong passwords without pause must delay others' first sign-ins by a check, not by
// the whole queue, and must not keep them out when the queue is full.
const HASH = bcrypt.hashSync('right', 5);
let checks: BcryptChecks;
afterEach(() => checks?.close());

/** Starts a check and records when it ends: the order of `done`, or 503. */
function track(done: string[], label: string, source: string, password = 'wrong'): Promise<boolean | 'busy'> {
  return checks.compare(password, HASH, source).then(
    (ok) => {
      done.push(label);
      return ok;
    },
    (error: { status?: number }) => {
      expect(error.status).toBe(503);
      return 'busy';
    },
  );
}

it('lets each source take its turn: a new source waits behind one check of a busy one, not all of them', async () => {
  checks = new BcryptChecks();
  const done: string[] = [];
  const storm = Array.from({ length: 8 }, (_, i) => track(done, `storm-${i}`, '192.0.2.66'));
  const node = track(done, 'node', '192.0.2.10', 'right');
  expect(await node).toBe(true);
  await Promise.all(storm);
  // storm-0 was running, storm-1 had the next turn; the node's check came right after.
  expect(done.indexOf('node')).toBe(2);
  expect(done).toHaveLength(9);
});

it('lets one source fill the queue (a farm behind one NAT), refuses it beyond, and still lets another in', async () => {
  checks = new BcryptChecks();
  const done: string[] = [];
  const storm = Array.from({ length: 40 }, (_, i) => track(done, `storm-${i}`, '192.0.2.66'));
  const node = track(done, 'node', '192.0.2.10', 'right');
  expect(await node).toBe(true);
  const results = await Promise.all(storm);
  // One running and 32 waiting were taken, the rest refused without queueing; the node took the place of one.
  expect(results.filter((r) => r === 'busy')).toHaveLength(8);
  expect(done.indexOf('node')).toBe(2);
});

it('makes room in a full queue for a source with fewer checks waiting, taken from the one with the most', async () => {
  checks = new BcryptChecks();
  const done: string[] = [];
  const busy = Array.from({ length: 4 }, (_, s) => Array.from({ length: 8 }, (_, i) => track(done, `s${s}-${i}`, `192.0.2.${s + 1}`)));
  // 4 × 8 started: one running, 31 waiting; one more from a fifth fills the queue.
  const fifth = track(done, 'fifth', '192.0.2.50');
  const newcomer = track(done, 'newcomer', '192.0.2.10', 'right');
  expect(await newcomer).toBe(true);
  expect(await fifth).toBe(false);
  const results = (await Promise.all(busy.flat()));
  // Exactly one check of a source with the most waiting gave its place up.
  expect(results.filter((r) => r === 'busy')).toHaveLength(1);
});

it('keeps a full queue of sources with one check each: nobody gives up a place for a newcomer', async () => {
  checks = new BcryptChecks();
  const done: string[] = [];
  const one = Array.from({ length: 33 }, (_, s) => track(done, `s${s}`, `198.51.100.${s + 1}`));
  expect(await track(done, 'newcomer', '192.0.2.10', 'right')).toBe('busy');
  expect((await Promise.all(one)).filter((r) => r === 'busy')).toHaveLength(0);
});
