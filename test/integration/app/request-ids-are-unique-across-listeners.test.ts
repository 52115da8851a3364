/**
 * Issue 12, logs: every listener of one process draws request IDs from one sequence, and each answer
 * names its ID (X-Request-Id) as its log line does. fastify's default (`req-1` per listener) gave the
 * first request on 443 and the first on 80 the same ID.
 */
import { request as httpsRequest } from 'node:https';
import { afterEach, expect, it } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

function tlsRequestId(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername: 'docker.proxy', path: '/healthz', ca, headers: { host: 'docker.proxy' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.headers['x-request-id'])));
    });
    req.on('error', reject);
    req.end();
  });
}

it('gives requests on different listeners different IDs, each the one its log line carries', async () => {
  const layover = await startLayover();
  running.push(layover);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(await tlsRequestId(layover.addresses.https.port, layover.app.ca.certPem));
    ids.push(String((await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/healthz`)).headers.get('x-request-id')));
    ids.push(String((await fetch(`http://127.0.0.1:${layover.addresses.proxy!.port}/healthz`)).headers.get('x-request-id')));
  }
  expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-z]+$/.test(id)), ids.join(' ')).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
  const logged = layover.logs.filter((line) => line.msg === 'request').map((line) => line.reqId);
  expect(logged.sort()).toEqual([...ids].sort());
});

it('draws a new prefix in each process (or app), so IDs do not repeat across restarts and replicas', async () => {
  const first = await startLayover();
  running.push(first);
  const second = await startLayover();
  running.push(second);
  const a = (await fetch(`http://127.0.0.1:${first.addresses.http!.port}/healthz`)).headers.get('x-request-id');
  const b = (await fetch(`http://127.0.0.1:${second.addresses.http!.port}/healthz`)).headers.get('x-request-id');
  expect(a).not.toBe(b);
});
