import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { StatusBoard } from '../../../src/status/status-board.js';
import { freePort } from '../../helpers/dnsmasq.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { startS3rver, useS3rverCredentials, type S3Fixture } from '../../unit/cache/s3rver-fixture.js';
import { fleetSecrets } from '../replicas/loopback-fleet.js';

// Two in-process replicas of one shared cache (real Redis as the index, s3rver as the bucket), each on
// a loopback address of its own: each one's status page shows both, from the summaries the replicas
// publish into the index's records. What another replica wrote there is shown as text, and only if recent.
const ADDRESSES = ['127.0.0.31', '127.0.0.32'];

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 60_000);
afterAll(() => redis?.close());

async function startReplicas(s3: S3Fixture): Promise<RunningLayover[]> {
  const secrets = fleetSecrets();
  const replicas: RunningLayover[] = [];
  onTestFinished(async () => void (await Promise.allSettled(replicas.map((replica) => replica.close()))));
  for (const address of ADDRESSES) {
    const port = await freePort(address);
    replicas.push(
      await startLayover({
        https: `${address}:${port}`,
        http: `${address}:0`,
        dns: 'off',
        proxy: 'off',
        advertise: address,
        'ca-dir': secrets.caDir,
        registries: 'registry.test',
        'blob-store': `s3://${s3.bucket}/status?endpoint=${s3.endpoint}&pathStyle=true`,
        'cache-index': redis.url,
        'peer-address': `${address}:${port}`,
        'redirect-key-file': secrets.redirectKey,
      }),
    );
  }
  return replicas;
}

interface View {
  replica: string;
  tables: Record<string, string[][]>;
}

/** Asks again until `done` holds: summaries travel through Redis (a hang guard, not a timing). */
async function eventually<T>(ask: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await ask();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function view(replica: RunningLayover): Promise<View> {
  const answer = await fetch(`http://${replica.addresses.http!.address}:${replica.addresses.http!.port}/status.json`);
  expect(answer.status).toBe(200);
  return (await answer.json()) as View;
}

describe('the status page of replicas of a shared index', () => {
  it('shows every replica seen lately, each with its own numbers', async () => {
    useS3rverCredentials();
    const [first, second] = await startReplicas(await startS3rver());
    const [firstName, secondName] = ADDRESSES.map((address, i) => `${address}:${[first, second][i]!.addresses.https.port}`);
    for (let i = 0; i < 3; i++) {
      first!.app.metrics.recordRequest({ listener: 'https', route: 'blob', registry: 'registry.test', repository: 'app', cache: 'hit', status: 200, bytes: 1000, error: undefined });
    }
    // The numbers since the start go out at the next publication (every 30 s); the second replica
    // has published only the one at its start.
    await StatusBoard.for(first!.app.operations).publish();

    const rowOf = (v: View, name: string): string[] | undefined => v.tables.replicas?.find((row) => row[0]?.startsWith(name));
    // The record published at the start shows first: wait for the publication above to reach the second replica.
    const seen = await eventually(() => view(second!), (v) => rowOf(v, firstName!)?.[4] === '3');
    expect(seen.replica).toBe(secondName);
    // The first replica's row, as it published it: 3 requests, all hits, 3000 bytes saved.
    expect(rowOf(seen, firstName!)).toEqual([firstName, expect.stringMatching(/ s$/), '100.0 % / 100.0 % / 100.0 %', '2.9 KiB', '3', '0', expect.any(String)]);
    expect(rowOf(seen, secondName!)?.[0]).toBe(`${secondName} (this one)`);
    // The first replica sees itself live, and the second one.
    const own = await eventually(() => view(first!), (v) => rowOf(v, secondName!) !== undefined);
    expect(rowOf(own, firstName!)?.slice(0, 1)).toEqual([`${firstName} (this one)`]);
    expect(rowOf(own, secondName!)).toBeDefined();
  }, 120_000);

  it('shows what another replica wrote only as text and only while it is recent', async () => {
    useS3rverCredentials();
    const [first, second] = await startReplicas(await startS3rver());
    const cache = first!.app.cache;
    const hostile = '<img src=x onerror="window.__layoverXss=1">';
    await cache.setRecord('status/replica/hostile', { name: hostile, at: Date.now(), windows: { hour: { requests: 'many', hits: -3 } }, cache: null });
    await cache.setRecord('status/replica/gone', { name: 'gone-replica', at: Date.now() - 60 * 60_000, windows: {}, cache: {} });
    await cache.setRecord('status/replica/junk', 'not a summary');
    const page = async (): Promise<string> => (await fetch(`http://${second!.addresses.http!.address}:${second!.addresses.http!.port}/`)).text();
    const html = await eventually(page, (text) => text.includes('&lt;img src=x'));
    expect(html).toContain('&lt;img src=x onerror=&quot;window.__layoverXss=1&quot;&gt;');
    expect(html).not.toContain(hostile);
    expect(html).not.toContain('gone-replica');
    const hostileRow = (await view(second!)).tables.replicas?.find((row) => row[0] === hostile);
    expect(hostileRow?.slice(2, 6)).toEqual(['– / – / –', '0 B', '0', '0']);
  }, 120_000);
});
