/**
 * A fleet's fill lease names the upstream the fill comes from, and a replica follows another's fill
 * only for a client of that same registry: a client of another registry fetches alone (its own
 * registry's bytes verified), since the bytes of one registry go to a client of another only once it
 * showed them (src/access/). Two FleetFills on one real LocalLeaseStore scope play two replicas.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { LocalLeaseStore } from '../../../src/cache/indexes/local-lease.js';
import type { BlobCache } from '../../../src/cache/blob-cache.js';
import type { Fleet } from '../../../src/peers/fleet.js';
import { FleetFills } from '../../../src/peers/fleet-fills.js';
import { fleetTurn } from '../../../src/proxy/peer-fill.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const { logger } = captureLogger('debug');
const A = { host: '127.0.0.21', port: 443 };
const B = { host: '127.0.0.22', port: 443 };

function replicas(): { a: FleetFills; b: FleetFills } {
  const leases = new LocalLeaseStore(`fleet-fills-${randomBytes(6).toString('hex')}`);
  return { a: new FleetFills(leases, A, logger as FastifyBaseLogger), b: new FleetFills(leases, B, logger as FastifyBaseLogger) };
}

const digest = (): Digest => `sha256:${randomBytes(32).toString('hex')}` as Digest;

describe('fleet fills and the registry a fill comes from', () => {
  it('the lease names the fill\'s upstream to the other replicas', async () => {
    const { a, b } = replicas();
    const d = digest();
    expect(await a.decide(d, 'registry.test')).toMatchObject({ kind: 'mine' });
    expect(await b.decide(d, 'liar.test')).toEqual({ kind: 'peer', peer: A, origin: 'registry.test' });
  });

  it('a replica follows another\'s fill for a client of the same registry, and fetches alone for any other', async () => {
    const { a, b } = replicas();
    const d = digest();
    const mine = await a.decide(d, 'registry.test');
    expect(mine.kind).toBe('mine');
    const fleet = { fills: b } as unknown as Fleet;
    const cache = {} as BlobCache;
    const settled: unknown[] = [];
    const settle = (fill: unknown): void => void settled.push(fill);
    expect(await fleetTurn(fleet, cache, {} as FastifyRequest, d, 'https://registry.test', settle)).toEqual({ follow: A });
    const alone = await fleetTurn(fleet, cache, {} as FastifyRequest, d, 'https://liar.test', settle);
    expect(alone).toHaveProperty('fetch');
    // Only the follower gave its pending slot back; the one fetching alone still holds it.
    expect(settled).toEqual([undefined]);
  });
});
