/**
 * Issue 11, one upstream fetch per digest across the fleet: three Layover replicas (in this process,
 * each on its own loopback address, one CA) over one Redis or Postgres index (real servers started by
 * the harness) and one bucket (s3rver), in front of the held-upstream fixture (a registry whose blob
 * bodies the test can hold mid-way; see its header for why it is a fixture). Four clients on each
 * replica ask for one uncached blob at once: exactly one upstream GET, every client gets the right
 * bytes as they arrive. The replica that fetches holds the digest's fill lease; the others stream its
 * fill over TLS, signed with the fleet's key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PeerKey, PEER_SIGNATURE_HEADER } from '../../../src/peers/peer-key.js';
import { startHeldUpstream, HELD_ADDRESS, HELD_HOST, type HeldUpstream } from '../faults/held-upstream.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { PEER_JOINED } from '../../../src/peers/peer-blob-route.js';
import { PEER_REGISTRY_HEADER } from '../../../src/peers/peer-client.js';
import { type Answer, askReplica, blobGets as countBlobGets, fleetSecrets, REPLICA_ADDRESSES, replicaFlags, until } from './loopback-fleet.js';
import { startS3rver, useS3rverCredentials, type S3Fixture } from '../../unit/cache/s3rver-fixture.js';

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

/** Three replicas over one index and bucket; the first creates the CA the others load. */
async function startFleet(cacheIndex: string, s3: S3Fixture, prefix: string): Promise<RunningLayover[]> {
  const secrets = fleetSecrets();
  const replicas: RunningLayover[] = [];
  onTestFinished(async () => {
    await Promise.allSettled(replicas.map((replica) => replica.close()));
  });
  for (const address of REPLICA_ADDRESSES) replicas.push(await startLayover(await replicaFlags({ upstream, dns, s3, cacheIndex, prefix }, secrets, address)));
  return replicas;
}

const ask = (replica: RunningLayover, address: string, path: string): Promise<Answer> => askReplica(upstream, address, replica.app.ca.certPem, path);
const blobGets = (): number => countBlobGets(upstream);

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

describe('a download through a storage redirect', () => {
  it('is fetched once for the fleet too: clients of every replica follow the one storage GET', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const replicas = await startFleet(redis.url, s3, 'fleet-storage');
    const { digest, bytes } = upstream.blob;
    // Each client is sent to docker.proxy by its replica (REDIRECTS=rewrite), and asks that replica for it.
    const redirects = await Promise.all(replicas.flatMap((replica, i) => [0, 1].map(() => ask(replica, REPLICA_ADDRESSES[i]!, `/v2/redirect/app/blobs/${digest}`))));
    const locations = redirects.map((answer) => {
      expect(answer.status).toBe(307);
      const location = new URL(String(answer.headers.location));
      expect(location.hostname).toBe('docker.proxy');
      return location.pathname + location.search;
    });
    const storageGets = (): number => upstream.seen.filter((seen) => seen.method === 'GET' && seen.url.startsWith('/storage/')).length;
    upstream.holdBodies();
    const answers = locations.map((path, i) => {
      const replica = replicas[Math.floor(i / 2)]!;
      const { host, port } = replica.app.config.peerAddress!;
      return new Promise<Answer>((resolve, reject) => {
        const req = httpsRequest({ host, port, servername: 'docker.proxy', ca: replica.app.ca.certPem, path, headers: { host: 'docker.proxy' }, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: true }));
          res.on('aborted', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: false }));
        });
        req.on('error', reject);
        req.end();
      });
    });
    await upstream.held(1);
    await until(() => replicas.flatMap((replica) => replica.logs).filter((line) => line.msg === PEER_JOINED).length >= (replicas.length - 1) * 2);
    upstream.release();
    for (const answer of await Promise.all(answers)) {
      expect([answer.status, answer.complete]).toEqual([200, true]);
      expect(answer.body.equals(bytes)).toBe(true);
    }
    expect(storageGets()).toBe(1);
  }, 120_000);
});

/** A GET of `path` on `replica`'s peer route (its HTTPS listener as docker.proxy), with `headers`. */
const peerGet = (replica: RunningLayover, path: string, headers: Record<string, string>): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const { peerAddress } = replica.app.config;
    const req = httpsRequest(
      { host: peerAddress!.host, port: peerAddress!.port, servername: 'docker.proxy', ca: replica.app.ca.certPem, path, headers: { host: 'docker.proxy', ...headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: true }));
      },
    );
    req.on('error', reject);
    req.end();
  });
const codeOf = (answer: Answer): string => (JSON.parse(answer.body.toString()) as { errors: Array<{ code: string }> }).errors[0]!.code;

describe('the peer route', () => {
  it('serves only the fleet: unsigned, foreign-signed or replayed-elsewhere requests are refused before anything is looked up', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const [replica] = await startFleet(redis.url, s3, 'peer-route');
    const digest = upstream.blob.digest;
    const before = blobGets();
    const peerPath = `/layover/peer/blobs/${digest}`;
    const get = (path: string, headers: Record<string, string>): Promise<Answer> => peerGet(replica!, path, headers);

    const unsigned = await get(peerPath, {});
    expect([unsigned.status, codeOf(unsigned)]).toEqual([403, 'DENIED']);
    const foreign = await get(peerPath, { [PEER_SIGNATURE_HEADER]: PeerKey.fromCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey).sign('GET', peerPath) });
    expect([foreign.status, codeOf(foreign)]).toEqual([403, 'DENIED']);
    const fleetKey = replica!.app.fleet!.key;
    const otherPath = `/layover/peer/blobs/sha256:${'0'.repeat(64)}`;
    const moved = await get(peerPath, { [PEER_SIGNATURE_HEADER]: fleetKey.sign('GET', otherPath) });
    expect([moved.status, codeOf(moved)]).toEqual([403, 'DENIED']);
    const badDigest = await get('/layover/peer/blobs/sha256:xyz', { [PEER_SIGNATURE_HEADER]: fleetKey.sign('GET', '/layover/peer/blobs/sha256:xyz') });
    expect([badDigest.status, codeOf(badDigest)]).toEqual([400, 'DIGEST_INVALID']);
    // Signed and well-formed, but this replica holds nothing of it: nothing was fetched for the asker.
    const nothing = await get(peerPath, { [PEER_SIGNATURE_HEADER]: fleetKey.sign('GET', peerPath) });
    expect([nothing.status, codeOf(nothing)]).toEqual([404, 'BLOB_UNKNOWN']);
    expect(blobGets()).toBe(before);
  }, 60_000);

  it('sends a replica only a copy of the registry its client named (another registry must show the bytes first)', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const [replica] = await startFleet(redis.url, s3, 'peer-registry');
    const { digest, bytes } = upstream.blob;
    expect((await ask(replica!, REPLICA_ADDRESSES[0]!, `/v2/ok/app/blobs/${digest}`)).body.equals(bytes)).toBe(true);
    await until(() => replica!.app.cache.stat(digest) !== undefined);
    const peerPath = `/layover/peer/blobs/${digest}`;
    const signed = { [PEER_SIGNATURE_HEADER]: replica!.app.fleet!.key.sign('GET', peerPath) };
    // The registry as a client names it: its host and port (the upstream is not on 443).
    const same = await peerGet(replica!, peerPath, { ...signed, [PEER_REGISTRY_HEADER]: `${HELD_HOST}:${upstream.port}` });
    expect(same.status).toBe(200);
    expect(same.body.equals(bytes)).toBe(true);
    // Refused: another registry, the same host at another port (a registry of its own), none named.
    const others: Array<Record<string, string>> = [{ [PEER_REGISTRY_HEADER]: 'other.test' }, { [PEER_REGISTRY_HEADER]: `${HELD_HOST}:${upstream.port + 1}` }, {}];
    for (const other of others) {
      const refused = await peerGet(replica!, peerPath, { ...signed, ...other });
      expect([refused.status, codeOf(refused)]).toEqual([404, 'BLOB_UNKNOWN']);
    }
  }, 60_000);
});
