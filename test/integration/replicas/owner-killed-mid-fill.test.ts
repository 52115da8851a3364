/**
 * Issue 11: the replica that fetches a blob for the fleet is killed with SIGKILL mid-fill. Replica A
 * is a `layover serve` child process (so it can really be killed), B and C run in this process; one
 * Redis index (real redis-server) and one bucket (s3rver); the upstream is the held-upstream fixture,
 * which stops its body short of the end until released (the upstream "slowed"). A takes the digest's
 * fill lease, clients of B and C follow A's fill; A dies: no client gets a complete 2xx answer, and
 * what each got is a prefix of the right bytes. A retry through B takes the fetch over once A's lease
 * ran out and gets the right bytes; A, started again on its data dir, reconciles to one object with
 * one row, no temp file, no upload left open, and serves the blob as a hit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { PEER_JOINED } from '../../../src/peers/peer-blob-route.js';
import { HELD_HOST, type HeldUpstream } from '../faults/held-upstream.js';
import { LAYOVER_CLI } from '../../bench/layover-process.js';
import type { Dnsmasq } from '../../helpers/dnsmasq.js';
import type { RedisServer } from '../../helpers/redis-server.js';
import { stopChild } from '../../helpers/server-process.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';
import { type Answer, askReplica, blobGets, fleetSecrets, type FleetGround, REPLICA_ADDRESSES, replicaFlags, startFleetGround, until } from './loopback-fleet.js';

let ground: FleetGround;
let upstream: HeldUpstream;
let dns: Dnsmasq;
let redis: RedisServer;
beforeAll(async () => {
  ground = await startFleetGround();
  ({ upstream, dns, redis } = ground);
}, 60_000);
afterAll(() => ground?.close());

interface ChildReplica {
  child: ChildProcess;
  /** Every JSON log line so far. */
  lines: Array<Record<string, unknown>>;
}

/** `layover serve` with these flags, ready once it logged that it listens. */
async function startChild(flags: Record<string, string>): Promise<ChildReplica> {
  const args = [LAYOVER_CLI, 'serve', ...Object.entries(flags).map(([name, value]) => `--${name}=${value}`)];
  const child = spawn(process.execPath, args, { env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => stopChild(child, 'SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  let rest = '';
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString();
    const parts = text.split('\n');
    rest = parts.pop()!;
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part) as Record<string, unknown>);
      } catch {
        // Not a log line.
      }
    }
  });
  const exited = once(child, 'exit').then(() => {
    throw new Error(`layover serve exited before it listened: ${errors.slice(0, 2000)}`);
  });
  await Promise.race([until(() => lines.some((line) => line.msg === 'layover is listening'), 60_000), exited]);
  return { child, lines };
}

it('the owner of a fill killed with SIGKILL mid-way: no client gets wrong bytes, a retry elsewhere takes over, the restart leaves no orphans', async () => {
  useS3rverCredentials();
  const s3 = await startS3rver();
  const secrets = fleetSecrets();
  const shared = { upstream, dns, s3, cacheIndex: redis.url, prefix: 'killed' };
  const ownerDataDir = mkdtempSync(join(tmpdir(), 'layover-owner-'));
  const ownerFlags = { ...(await replicaFlags(shared, secrets, REPLICA_ADDRESSES[0]!)), 'data-dir': ownerDataDir, 'log-level': 'debug', 'shutdown-drain': '0s' };
  const owner = await startChild(ownerFlags);
  const others: RunningLayover[] = [];
  onTestFinished(async () => {
    await Promise.allSettled(others.map((replica) => replica.close()));
  });
  for (const address of REPLICA_ADDRESSES.slice(1)) others.push(await startLayover(await replicaFlags(shared, secrets, address)));
  const caPem = readFileSync(join(secrets.caDir, 'ca.crt'), 'utf8');
  const { digest, bytes } = upstream.blob;
  const path = `/v2/ok/app/blobs/${digest}`;
  const before = blobGets(upstream);

  upstream.holdBodies();
  const ownersClient = askReplica(upstream, REPLICA_ADDRESSES[0]!, caPem, path);
  await upstream.held(1);
  const answering: Array<Promise<void>> = [];
  const follow = (address: string): Promise<Answer> => {
    let answered = (): void => undefined;
    answering.push(new Promise<void>((resolve) => (answered = resolve)));
    return askReplica(upstream, address, caPem, path, { onResponse: () => answered() });
  };
  const followers = REPLICA_ADDRESSES.slice(1).flatMap((address) => [follow(address), follow(address)]);
  await until(() => owner.lines.filter((line) => line.msg === PEER_JOINED).length === followers.length);
  // A's log line comes before its answer is on the wire: killed in between, a follower would rightly
  // wait A's lease out and fetch the blob itself. Each follower's replica answers once A's bytes arrive.
  // (A follower that fails instead ends the wait, and the test, at once.)
  await Promise.race([Promise.all(answering), Promise.all(followers)]);

  owner.child.kill('SIGKILL');
  await once(owner.child, 'exit');
  const cut = await Promise.all([ownersClient, ...followers]);
  for (const answer of cut) {
    expect(answer.complete && answer.status >= 200 && answer.status < 300).toBe(false);
    // What did arrive is the start of the blob, never other bytes.
    expect(answer.body.length).toBeLessThan(bytes.length);
    expect(answer.body.equals(bytes.subarray(0, answer.body.length))).toBe(true);
  }
  expect(blobGets(upstream) - before).toBe(1);

  // The retry meets A's lease, cannot reach A, waits the lease out, and fetches the blob itself.
  upstream.release();
  const retry = await askReplica(upstream, REPLICA_ADDRESSES[1]!, caPem, path);
  expect(retry.status).toBe(200);
  expect(retry.complete).toBe(true);
  expect(retry.body.equals(bytes)).toBe(true);
  expect(blobGets(upstream) - before).toBe(2);
  expect(others[0]!.logs.some((line) => line.msg === 'fleet fills: the replica fetching this blob cannot be reached; waiting for its lease to end')).toBe(true);
  await until(() => others.every((replica) => replica.app.cache.stat(digest) !== undefined));

  // A again, on its data dir: reconciled, nothing left of the killed fill, the blob a hit.
  const restarted = await startChild(ownerFlags);
  onTestFinished(() => stopChild(restarted.child));
  expect(readdirSync(join(ownerDataDir, 'cache', 'tmp'))).toEqual([]);
  expect(await s3.objects()).toHaveLength(1);
  expect(await s3.openUploads()).toEqual([]);
  const hit = await askReplica(upstream, REPLICA_ADDRESSES[0]!, caPem, path);
  expect(hit.body.equals(bytes)).toBe(true);
  expect(blobGets(upstream) - before).toBe(2);
  // Its log line arrives through a pipe, after the answer.
  await until(() => restarted.lines.some((line) => line.msg === 'request' && line.digest === digest));
  expect(restarted.lines.find((line) => line.msg === 'request' && line.digest === digest)).toMatchObject({ cache: 'hit' });
}, 180_000);
