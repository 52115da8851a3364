/**
 * Replicas of one shared cache on this host's loopback, for the fleet-fill tests: the held-upstream
 * fixture (test/integration/faults/held-upstream.ts, a fixture because its bodies are held mid-way on
 * demand) named by dnsmasq, real Redis/Postgres (test/helpers) as the index and s3rver as the bucket.
 * A replica runs in this process (`startLayover`) or as a `layover serve` child process, which a test
 * can kill with SIGKILL; each listens on its own loopback address (127.0.0.21…), the fixture's port
 * included (its registry port), so that clients ask a given replica by address.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Answer, askHeld, type AskOptions, HELD_ADDRESS, HELD_HOST, type HeldUpstream, startHeldUpstream } from '../faults/held-upstream.js';
import { freePort, type Dnsmasq, startDnsmasq } from '../../helpers/dnsmasq.js';
import { type RedisServer, startRedis } from '../../helpers/redis-server.js';
import type { S3Fixture } from '../../unit/cache/s3rver-fixture.js';

export const REPLICA_ADDRESSES = ['127.0.0.21', '127.0.0.22', '127.0.0.23'];

export type { Answer };

/** One GET of `path` as held.test to the replica at `address`, trusting `caPem`, on a connection of its own. */
export function askReplica(upstream: HeldUpstream, address: string, caPem: string, path: string, options: AskOptions = {}): Promise<Answer> {
  return askHeld(upstream.port, address, caPem, path, options);
}

export interface FleetShared {
  upstream: HeldUpstream;
  dns: Dnsmasq;
  s3: S3Fixture;
  cacheIndex: string;
  prefix: string;
}

/** The held upstream, dnsmasq naming it, and a real Redis for the index: what a test file's fleets stand on. */
export interface FleetGround {
  upstream: HeldUpstream;
  dns: Dnsmasq;
  redis: RedisServer;
  close(): Promise<void>;
}

export async function startFleetGround(): Promise<FleetGround> {
  const [upstream, dns, redis] = await Promise.all([startHeldUpstream(), startDnsmasq({ hostRecords: { [HELD_HOST]: [HELD_ADDRESS] } }), startRedis()]);
  return { upstream, dns, redis, close: async () => void (await Promise.allSettled([upstream.close(), dns.stop(), redis.close()])) };
}

/** What every replica of one fleet shares: the CA directory (the first replica creates it) and the redirect key. */
export function fleetSecrets(): { caDir: string; redirectKey: string } {
  const caDir = mkdtempSync(join(tmpdir(), 'layover-fleet-ca-'));
  const redirectKey = join(caDir, 'redirect.key');
  writeFileSync(redirectKey, randomBytes(32), { mode: 0o600 });
  return { caDir, redirectKey };
}

/** The flags of the replica at `address` (a free HTTPS port is chosen on it; PEER_ADDRESS names it). */
export async function replicaFlags(shared: FleetShared, secrets: { caDir: string; redirectKey: string }, address: string): Promise<Record<string, string>> {
  const { upstream, dns, s3 } = shared;
  const port = await freePort(address);
  return {
    https: `${address}:${port}`,
    http: 'off',
    dns: 'off',
    proxy: 'off',
    advertise: address,
    'ca-dir': secrets.caDir,
    registries: `${HELD_HOST}:${upstream.port}`,
    'upstream-dns': `${dns.host}:${dns.port}`,
    'upstream-ca': upstream.caFile,
    'blob-store': `s3://${s3.bucket}/${shared.prefix}?endpoint=${s3.endpoint}&pathStyle=true`,
    'cache-index': shared.cacheIndex,
    'peer-address': `${address}:${port}`,
    'redirect-key-file': secrets.redirectKey,
  };
}

/** Upstream blob GETs the fixture saw. */
export const blobGets = (upstream: HeldUpstream): number => upstream.seen.filter((seen) => seen.method === 'GET' && seen.url.includes('/blobs/')).length;

/** A hang guard for work between replicas on a loaded machine, not a timing. */
export async function until(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
