/**
 * Issue 11, one upstream fetch per digest across the fleet: three Layover replicas (in this process,
 * each on its own loopback address, one CA) over one Redis or Postgres index (real servers started by
 * the harness) and one bucket (s3rver), in front of the held-upstream fixture (a registry whose blob
 * bodies the test can hold mid-way; see its header for why it is a fixture). Four clients on each
 * replica ask for one uncached blob at once: exactly one upstream GET, every client gets the right
 * bytes as they arrive. The replica that fetches holds the digest's fill lease; the others stream its
 * fill over TLS, signed with the fleet's key.
 */
import { request as httpsRequest } from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startHeldUpstream, HELD_ADDRESS, HELD_HOST, type HeldUpstream } from '../faults/held-upstream.js';
import { freePort, startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { PEER_JOINED } from '../../../src/peers/peer-blob-route.js';
import { startS3rver, useS3rverCredentials, type S3Fixture } from '../../unit/cache/s3rver-fixture.js';

const REPLICA_ADDRESSES = ['127.0.0.21', '127.0.0.22', '127.0.0.23'];
const CLIENTS_PER_REPLICA = 4;

let upstream: HeldUpstream;
let dns: Dnsmasq;
let redis: RedisServer;
let postgres: PostgresServer;
beforeAll(async () => {
  [upstream, dns, redis, postgres] = await Promise.all([startHeldUpstream(), startDnsmasq({ hostRecords: { [HELD_HOST]: [HELD_ADDRESS] } }), startRedis(), startPostgres()]);
}, 60_000);
afterAll(async () => {
  await Promise.allSettled([upstream?.close(), dns?.stop(), redis?.close(), postgres?.close()]);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  complete: boolean;
}

/** One GET of `path` as held.test to the replica at `address`, on a connection of its own. */
function ask(replica: RunningLayover, address: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { host: `${HELD_HOST}:${upstream.port}` };
    const req = httpsRequest({ host: address, port: upstream.port, servername: HELD_HOST, ca: replica.app.ca.certPem, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const done = (complete: boolean): void => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete });
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done(true));
      res.on('error', () => done(false));
      res.on('aborted', () => done(false));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Three replicas over one index and bucket; the first creates the CA the others load. */
async function startFleet(cacheIndex: string, s3: S3Fixture, prefix: string): Promise<RunningLayover[]> {
  const caDir = mkdtempSync(join(tmpdir(), 'layover-fleet-ca-'));
  // Replicas share the key that signs docker.proxy URLs, as they share the CA.
  const redirectKey = join(caDir, 'redirect.key');
  writeFileSync(redirectKey, randomBytes(32), { mode: 0o600 });
  const replicas: RunningLayover[] = [];
  onTestFinished(async () => {
    await Promise.allSettled(replicas.map((replica) => replica.close()));
  });
  for (const address of REPLICA_ADDRESSES) {
    const port = await freePort(address);
    replicas.push(
      await startLayover({
        https: `${address}:${port}`,
        http: 'off',
        dns: 'off',
        proxy: 'off',
        advertise: address,
        'ca-dir': caDir,
        registries: `${HELD_HOST}:${upstream.port}`,
        'upstream-dns': `${dns.host}:${dns.port}`,
        'upstream-ca': upstream.caFile,
        'blob-store': `s3://${s3.bucket}/${prefix}?endpoint=${s3.endpoint}&pathStyle=true`,
        'cache-index': cacheIndex,
        'peer-address': `${address}:${port}`,
        'redirect-key-file': redirectKey,
      }),
    );
  }
  return replicas;
}

const blobGets = (): number => upstream.seen.filter((seen) => seen.method === 'GET' && seen.url.includes('/blobs/')).length;

describe.each([
  ['redis', () => redis.url],
  ['postgres', () => postgres.url],
])('replicas over a shared %s index', (name, indexUrl) => {
  it(`${REPLICA_ADDRESSES.length} replicas × ${CLIENTS_PER_REPLICA} clients on one uncached blob: one upstream GET, the right bytes for all`, async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const replicas = await startFleet(indexUrl(), s3, `fleet-${name}`);
    const path = `/v2/ok/app/blobs/${upstream.blob.digest}`;
    const before = blobGets();
    // The body stops short of its end until every client has asked: all of them meet the one fill.
    upstream.holdBodies();
    const answers = replicas.flatMap((replica, i) => Array.from({ length: CLIENTS_PER_REPLICA }, () => ask(replica, REPLICA_ADDRESSES[i]!, path)));
    await upstream.held(1);
    const peerLines = (): number => replicas.flatMap((replica) => replica.logs).filter((line) => line.msg === PEER_JOINED).length;
    // Every follower on the other replicas reached the owner before the body goes on.
    await until(() => peerLines() >= (REPLICA_ADDRESSES.length - 1) * CLIENTS_PER_REPLICA);
    upstream.release();
    const results = await Promise.all(answers);

    expect(blobGets() - before).toBe(1);
    for (const answer of results) {
      expect(answer.status).toBe(200);
      expect(answer.complete).toBe(true);
      expect(answer.body.equals(upstream.blob.bytes)).toBe(true);
      expect(answer.headers['docker-content-digest']).toBe(upstream.blob.digest);
    }
    // One replica fetched; the clients of the other two followed it. (A request's log line is written after its client got the end.)
    const requestLines = (): Array<Array<Record<string, unknown>>> =>
      replicas.map((replica) => replica.logs.filter((line) => line.msg === 'request' && line.digest === upstream.blob.digest && line.peer !== 'served'));
    await until(() => requestLines().flat().length === results.length);
    const owners = requestLines().filter((lines) => lines.every((line) => line.peer === undefined));
    expect(owners).toHaveLength(1);
    const followers = requestLines().flat().filter((line) => typeof line.peer === 'string');
    expect(followers).toHaveLength((REPLICA_ADDRESSES.length - 1) * CLIENTS_PER_REPLICA);

    // Committed once for all: a hit everywhere now, still one upstream GET.
    for (const [i, replica] of replicas.entries()) {
      await until(() => replica.app.cache.stat(upstream.blob.digest) !== undefined);
      const again = await ask(replica, REPLICA_ADDRESSES[i]!, path);
      expect(again.body.equals(upstream.blob.bytes)).toBe(true);
    }
    expect(blobGets() - before).toBe(1);
    expect(await s3.objects()).toHaveLength(1);
  }, 120_000);
});

/** A hang guard for work between replicas on a loaded machine, not a timing. */
async function until(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
