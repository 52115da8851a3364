/**
 * HTTP/1.0 has no chunked encoding: a body of no known length ends by the connection's close, and a
 * relay cut short (the owner died, its bytes did not match) ends the same way. So an HTTP/1.0 client of
 * a blob that another replica is fetching without a Content-Length is not relayed the bytes as they
 * come: the owner answers its replica once the fill is verified, with the length, and the blob is
 * relayed with it.
 *
 * Two replicas in this process sharing a real Redis index and an s3rver bucket (test/integration/replicas/
 * loopback-fleet.ts); the held-upstream fixture's `chunked` blob (no Content-Length), held mid-way so
 * that the second replica's client follows the first replica's fill; real curl over HTTP/1.0.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { PEER_JOINED } from '../../../src/peers/peer-blob-route.js';
import { HELD_HOST } from '../faults/held-upstream.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';
import { askReplica, blobGets, fleetSecrets, type FleetGround, REPLICA_ADDRESSES, replicaFlags, startFleetGround, until } from './loopback-fleet.js';

const run = promisify(execFile);
let ground: FleetGround;
beforeAll(async () => {
  ground = await startFleetGround();
}, 60_000);
afterAll(() => ground?.close());

it('an HTTP/1.0 client following another replica\'s fill of unknown length gets the verified blob with its length', async () => {
  useS3rverCredentials();
  const s3 = await startS3rver();
  const secrets = fleetSecrets();
  const { upstream, dns, redis } = ground;
  const shared = { upstream, dns, s3, cacheIndex: redis.url, prefix: 'http10' };
  const replicas: RunningLayover[] = [];
  onTestFinished(async () => {
    await Promise.allSettled(replicas.map((replica) => replica.close()));
    rmSync(secrets.caDir, { recursive: true, force: true });
  });
  for (const address of REPLICA_ADDRESSES.slice(0, 2)) replicas.push(await startLayover(await replicaFlags(shared, secrets, address)));
  const caFile = join(secrets.caDir, 'ca.crt');
  const { digest, bytes } = upstream.blob;
  const path = `/v2/chunked/app/blobs/${digest}`;
  const before = blobGets(upstream);

  upstream.holdBodies();
  const ownersClient = askReplica(upstream, REPLICA_ADDRESSES[0]!, readFileSync(caFile, 'utf8'), path);
  await upstream.held(1);
  const dir = mkdtempSync(join(tmpdir(), 'layover-http10-peer-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const follower = run('curl', [
    '-sS', '--max-time', '30', '--http1.0', '--no-alpn', '--cacert', caFile,
    '--resolve', `${HELD_HOST}:${upstream.port}:${REPLICA_ADDRESSES[1]}`,
    '-D', join(dir, 'headers'), '-o', join(dir, 'body'),
    `https://${HELD_HOST}:${upstream.port}${path}`,
  ]);
  await until(() => replicas[0]!.logs.some((line) => line.msg === PEER_JOINED));
  upstream.release();
  await follower;
  expect((await ownersClient).body.equals(bytes)).toBe(true);

  const [statusLine, ...lines] = readFileSync(join(dir, 'headers'), 'utf8').trim().split(/\r?\n/);
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  expect(statusLine).toMatch(/^HTTP\/1\.[01] 200/);
  // Before the change: the relay as the bytes came, without Content-Length, ended by the close.
  expect(headers['content-length']).toBe(String(bytes.length));
  expect(readFileSync(join(dir, 'body')).equals(bytes)).toBe(true);
  // Still one upstream fetch for the fleet.
  expect(blobGets(upstream) - before).toBe(1);
}, 120_000);
