/**
 * Issue 11, restarts without an outage: other nodes resolve the intercepted names through a
 * replica's DNS server, so a stopping Layover keeps answering DNS through the drain (it closes its DNS
 * listener last, after the HTTP listeners). Once the drain is over and its listeners no longer accept,
 * an intercepted name gets SERVFAIL (a resolver asks its next server) while other names are still
 * forwarded. Real `layover serve` as a process, real `dig`.
 */
import { expect, it } from 'vitest';
import { dig } from '../../helpers/dig.js';
import { UPSTREAM_HOST } from '../hardening/hostile-upstream.js';
import { connectResult, FORWARDED_HOST, serve, type ServeProcess, setUp, startDownload } from './serve-process.js';

function dnsPort(layover: ServeProcess): number {
  const listening = layover
    .output()
    .split('\n')
    .find((line) => line.includes('"msg":"layover is listening"'))!;
  return Number((JSON.parse(listening) as { dns: string }).dns.split(':').at(-1));
}

it('after SIGTERM: intercepted names are still answered during the drain', async () => {
  const setup = await setUp();
  const layover = await serve(setup, ['--dns', '127.0.0.1:0', '--shutdown-drain', '3s']);
  const port = dnsPort(layover);
  expect((await dig(port, UPSTREAM_HOST, 'A')).answers.map((a) => a.data)).toEqual(['127.0.0.1']);

  layover.child.kill('SIGTERM');
  await layover.logged('shutting down');
  const during = await dig(port, UPSTREAM_HOST, 'A');
  expect(during.status).toBe('NOERROR');
  expect(during.answers.map((a) => a.data)).toEqual(['127.0.0.1']);

  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(0);
}, 60_000);

it('after the drain: intercepted names get SERVFAIL while a response is still in flight, other names are forwarded', async () => {
  const setup = await setUp();
  // The stalled response keeps Layover stopping until the grace period ends.
  const layover = await serve(setup, ['--dns', '127.0.0.1:0', '--shutdown-drain', '0s', '--shutdown-grace', '4s', '--proxy-read-timeout', '120s', '--send-timeout', '120s']);
  const port = dnsPort(layover);
  const { status } = await startDownload(setup, layover.ca, `/v2/stall/blobs/${setup.upstream.slow.digest}`);
  expect(status).toBe(200);

  layover.child.kill('SIGTERM');
  await layover.logged('shutting down');
  // The listeners have closed: nothing accepts at the address DNS would give.
  for (let tries = 0; (await connectResult(setup.upstream.port)) === 'connected'; tries++) {
    if (tries > 100) throw new Error('the listener still accepts');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const held = await dig(port, UPSTREAM_HOST, 'A');
  expect(held.status, held.raw).toBe('SERVFAIL');
  expect(held.answers).toEqual([]);
  expect((await dig(port, FORWARDED_HOST, 'A')).answers.map((a) => a.data)).toEqual(['192.0.2.7']);
  expect(layover.child.exitCode).toBeNull();

  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(1);
}, 60_000);
