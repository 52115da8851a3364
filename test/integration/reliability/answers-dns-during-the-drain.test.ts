/**
 * Issue 11, restarts without an outage: other nodes resolve the intercepted names through a
 * replica's DNS server, so a stopping Layover keeps answering DNS through the drain (it closes its DNS
 * listener last, after the HTTP listeners). Real `layover serve` as a process, real `dig`.
 */
import { expect, it } from 'vitest';
import { dig } from '../../helpers/dig.js';
import { UPSTREAM_HOST } from '../hardening/hostile-upstream.js';
import { serve, setUp } from './serve-process.js';

it('after SIGTERM: intercepted names are still answered during the drain', async () => {
  const setup = await setUp();
  const layover = await serve(setup, ['--dns', '127.0.0.1:0', '--shutdown-drain', '3s']);
  const listening = layover
    .output()
    .split('\n')
    .find((line) => line.includes('"msg":"layover is listening"'))!;
  const port = Number((JSON.parse(listening) as { dns: string }).dns.split(':').at(-1));
  expect((await dig(port, UPSTREAM_HOST, 'A')).answers.map((a) => a.data)).toEqual(['127.0.0.1']);

  layover.child.kill('SIGTERM');
  await layover.logged('shutting down');
  const during = await dig(port, UPSTREAM_HOST, 'A');
  expect(during.status).toBe('NOERROR');
  expect(during.answers.map((a) => a.data)).toEqual(['127.0.0.1']);

  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(0);
}, 60_000);
