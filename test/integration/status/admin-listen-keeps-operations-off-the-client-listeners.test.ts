/**
 * Issue 12: ADMIN_LISTEN gives /metrics, the status page and the admin API a listener of their own,
 * and keeps them off the listeners clients use: the HTTP listener and https://docker.proxy/ (where
 * the status page is served without it).
 */
import { request as httpsRequest } from 'node:https';
import { expect, it, onTestFinished } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

async function start(env: NodeJS.ProcessEnv = {}): Promise<RunningLayover> {
  const layover = await startLayover({}, env);
  onTestFinished(() => layover.close());
  return layover;
}

function dockerProxy(layover: RunningLayover, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: layover.addresses.https.port, servername: 'docker.proxy', path, ca: layover.app.ca.certPem, headers: { host: 'docker.proxy' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const status = async (port: number, path: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}${path}`)).status;

it('without ADMIN_LISTEN: the status page on the HTTP listener and at https://docker.proxy/', async () => {
  const layover = await start();
  expect(await status(layover.addresses.http!.port, '/')).toBe(200);
  expect(await dockerProxy(layover, '/status.json')).toBe(200);
});

it('with ADMIN_LISTEN: everything there, nothing on the HTTP listener or at https://docker.proxy/', async () => {
  const layover = await start({ ADMIN_LISTEN: '127.0.0.1:0' });
  const admin = layover.addresses.admin!.port;
  for (const path of ['/', '/status.json', '/metrics']) expect(await status(admin, path), path).toBe(200);
  expect(await status(admin, '/admin/stats')).toBe(401);
  for (const path of ['/', '/status.json', '/metrics', '/admin/stats']) expect(await status(layover.addresses.http!.port, path), path).toBe(404);
  expect(await dockerProxy(layover, '/status.json')).toBe(404);
  expect(await dockerProxy(layover, '/')).toBe(404);
});
