/**
 * Issue 10, "what a new user hits": `/v2/` on a brand-new cache whose upstream cannot be reached was
 * answered `200 {}` (logged `stale`), so clients went on to fail later with stranger errors. Layover
 * stands in for the ping only for a registry that answered it before (the ping, a manifest or a
 * blob; remembered with the cache's records, so across restarts too); otherwise 503 UNAVAILABLE.
 */
import { copyFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterEach, expect, it, onTestFinished } from 'vitest';
import { type InterceptedFixture, interceptFixture } from '../../helpers/intercepted-fixture.js';
import { startLayover } from '../../helpers/start-layover.js';
import { type HeldManifestUpstream, MANIFEST_ADDRESS, MANIFEST_HOST, startHeldManifestUpstream } from './held-manifest-upstream.js';

const codeOf = (body: Buffer): string | undefined => (JSON.parse(body.toString()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;

let upstream: HeldManifestUpstream | undefined;
let intercepted: InterceptedFixture | undefined;
afterEach(async () => {
  await intercepted?.close();
  await upstream?.close();
});

it('a registry never reached: 503 UNAVAILABLE naming it, not 200', async () => {
  // Its name resolves nowhere (the test's upstream resolver is a closed port).
  const layover = await startLayover({ registries: 'never-reached.test' });
  onTestFinished(() => layover.close());
  const answer = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: layover.addresses.https!.port, servername: 'never-reached.test', path: '/v2/', headers: { host: 'never-reached.test' }, ca: layover.app.ca.certPem, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  expect(answer.status, answer.body.toString()).toBe(503);
  expect(codeOf(answer.body)).toBe('UNAVAILABLE');
  expect(answer.body.toString()).toContain('never-reached.test');
  expect(layover.logs.some((l) => l.msg === 'request' && l.cache === 'stale')).toBe(false);
});

it('a registry that answered before: Layover answers the ping while it is down, and after a restart', async () => {
  upstream = await startHeldManifestUpstream();
  const fixture = { host: MANIFEST_HOST, address: MANIFEST_ADDRESS, port: upstream.port, caFile: upstream.caFile };
  intercepted = await interceptFixture(fixture);
  expect((await intercepted.ask('/v2/')).status).toBe(200);
  expect(upstream.seen.map((r) => r.url)).toContain('/v2/');
  const dataDir = intercepted.layover.dataDir;
  // The fixture takes its CA with it; the restarted Layover still names one.
  const caFile = join(dataDir, 'upstream-ca.crt');
  copyFileSync(upstream.caFile, caFile);
  await intercepted.close();
  await upstream.close();
  upstream = undefined;

  intercepted = await interceptFixture({ ...fixture, caFile, flags: { 'data-dir': dataDir } });
  const ping = await intercepted.ask('/v2/');
  expect(ping.status, ping.body.toString()).toBe(200);
  expect(intercepted.layover.logs.some((l) => l.msg === 'request' && l.cache === 'stale')).toBe(true);
});
