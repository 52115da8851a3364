/**
 * Issue 11, restarts without an outage: a request that arrives on an existing keep-alive connection
 * after SIGTERM is served, with `Connection: close`, not refused with fastify's 503 ("server is
 * closing") or reset with the idle connections (what failed about one pull in 240 across a restart).
 * Readiness turns 503 at once while liveness stays 200, and the process exits on its own within
 * SHUTDOWN_GRACE. The real `layover serve` as a process (./serve-process.ts).
 */
import { Agent } from 'node:https';
import { expect, it, onTestFinished } from 'vitest';
import { DOCKER_PROXY_HOST } from '../../../src/registry/well-known-hosts.js';
import { get, serve, setUp } from './serve-process.js';

it('after SIGTERM: a request on a kept-alive connection gets its 200 with Connection: close, /readyz 503, /livez 200, and the process exits within the grace', async () => {
  const setup = await setUp();
  // A long drain: the request below must arrive while the listener still accepts, as it would from a
  // client that had not been told yet; a grace well above it, so exit code 0 means "finished by itself".
  const layover = await serve(setup, ['--shutdown-drain', '3s', '--shutdown-grace', '20s']);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  onTestFinished(() => agent.destroy());
  const path = `/v2/any/blobs/${setup.upstream.blob.digest}`;
  const probe = (route: string) => get(setup, layover.ca, route, { host: DOCKER_PROXY_HOST });

  const first = await get(setup, layover.ca, path, { agent });
  expect(first.status).toBe(200);
  expect(first.headers.connection).toBe('keep-alive');
  expect((await probe('/readyz')).status).toBe(200);
  expect((await probe('/livez')).status).toBe(200);

  layover.child.kill('SIGTERM');
  await layover.logged('shutting down');
  const readyz = await probe('/readyz');
  expect(readyz.status).toBe(503);
  expect(JSON.parse(readyz.body.toString())).toEqual({ status: 'stopping' });
  const livez = await probe('/livez');
  expect(livez.status).toBe(200);

  const second = await get(setup, layover.ca, path, { agent });
  expect(second.reusedSocket).toBe(true);
  expect(second.status, second.body.toString()).toBe(200);
  expect(second.headers.connection).toBe('close');
  expect(second.body.equals(setup.upstream.blob.bytes)).toBe(true);

  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(0);
}, 60_000);
