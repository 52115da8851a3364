import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover with the admin API on a listener of its own (ADMIN_LISTEN). Every refusal of the
// admin API, each in the OCI error format: no credentials, a wrong token, a client-auth user outside
// ADMIN_GROUP, a source outside ADMIN_ALLOW_NETWORKS (another loopback address, bound with localAddress).
const ADMIN_USER_TOKEN = 'ops-token-1f2e3d4c5b6a7988';
const PLAIN_USER_TOKEN = 'dev-token-9a8b7c6d5e4f3021';

const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function layoverWith(lines: string[]): Promise<{ layover: RunningLayover; port: number; token: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-admin-'));
  dirs.push(dir);
  const file = join(dir, 'layover.yaml');
  writeFileSync(file, ['registries: [registry.test]', 'adminListen: 127.0.0.1:0', ...lines].join('\n'));
  const layover = await startLayover({ config: file, 'data-dir': join(dir, 'data') });
  running.push(layover);
  const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
  return { layover, port: layover.addresses.admin!.port, token };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { errors?: Array<{ code: string; message: string }> } & Record<string, unknown>;
}

function call(port: number, method: string, path: string, options: { authorization?: string; from?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ...(options.from ? { localAddress: options.from } : {}),
        headers: { ...(options.authorization ? { authorization: options.authorization } : {}), ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const ROUTES: Array<[string, string, unknown?]> = [
  ['GET', '/admin/images'],
  ['GET', '/admin/blobs'],
  ['GET', '/admin/stats'],
  ['GET', '/admin/pins'],
  ['POST', '/admin/purge', { registry: 'registry.test' }],
  ['POST', '/admin/pin', { registry: 'registry.test' }],
  ['POST', '/admin/unpin', { registry: 'registry.test' }],
  ['POST', '/admin/prune', {}],
  ['POST', '/admin/verify', {}],
];

describe('the admin API refuses', () => {
  it('a request without credentials (401 with a challenge) and a wrong token (401), on every route', async () => {
    const { port, token } = await layoverWith([]);
    for (const [method, path, body] of ROUTES) {
      const anonymous = await call(port, method, path, { body });
      expect(anonymous.status, `${method} ${path}`).toBe(401);
      expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer realm="layover-admin"/);
      expect(anonymous.body.errors?.[0]?.code).toBe('UNAUTHORIZED');
      const wrong = await call(port, method, path, { body, authorization: `Bearer ${token.slice(0, -1)}x` });
      expect(wrong.status, `${method} ${path}`).toBe(401);
      expect(wrong.body.errors?.[0]?.code).toBe('UNAUTHORIZED');
    }
    const right = await call(port, 'GET', '/admin/stats', { authorization: `Bearer ${token}` });
    expect(right.status).toBe(200);
    expect(right.body).toMatchObject({ entries: 0, bytes: 0, pins: 0, pinnedBytes: 0, waiters: 0 });
  });

  it('a client-auth user outside ADMIN_GROUP (403), while a member gets in (200)', async () => {
    const { port } = await layoverWith([
      'clientAuth: tokens',
      'clientTokens:',
      `  - {user: ops, token: ${ADMIN_USER_TOKEN}, groups: [layover-admins]}`,
      `  - {user: dev, token: ${PLAIN_USER_TOKEN}, groups: [developers]}`,
    ]);
    const plain = await call(port, 'GET', '/admin/images', { authorization: `Bearer ${PLAIN_USER_TOKEN}` });
    expect(plain.status).toBe(403);
    expect(plain.body.errors?.[0]).toMatchObject({ code: 'DENIED', message: expect.stringContaining('ADMIN_GROUP') });
    const purge = await call(port, 'POST', '/admin/purge', { authorization: `Bearer ${PLAIN_USER_TOKEN}`, body: { registry: 'registry.test' } });
    expect(purge.status).toBe(403);
    const admin = await call(port, 'GET', '/admin/images', { authorization: `Bearer ${ADMIN_USER_TOKEN}` });
    expect(admin.status).toBe(200);
    expect(admin.body).toEqual({ images: [] });
    const anonymous = await call(port, 'GET', '/admin/images');
    expect(anonymous.headers['www-authenticate']).toContain('Basic');
  });

  it('a source outside ADMIN_ALLOW_NETWORKS (403), even with the right token', async () => {
    const { port, token } = await layoverWith(['adminAllowNetworks: [127.0.0.3/32]']);
    const stranger = await call(port, 'GET', '/admin/stats', { authorization: `Bearer ${token}`, from: '127.0.0.2' });
    expect(stranger.status).toBe(403);
    expect(stranger.body.errors?.[0]).toMatchObject({ code: 'DENIED', message: expect.stringContaining('ADMIN_ALLOW_NETWORKS') });
    const purge = await call(port, 'POST', '/admin/purge', { authorization: `Bearer ${token}`, from: '127.0.0.1', body: { registry: 'registry.test' } });
    expect(purge.status).toBe(403);
    const allowed = await call(port, 'GET', '/admin/stats', { authorization: `Bearer ${token}`, from: '127.0.0.3' });
    expect(allowed.status).toBe(200);
  });

  it('a change a browser sends from another site (403), even with the right credentials; the same site and the CLI get in', async () => {
    const { port, token } = await layoverWith([]);
    const authorization = `Bearer ${token}`;
    const crossSite: Array<Record<string, string>> = [
      { origin: 'https://attacker.example' },
      { origin: `http://127.0.0.1:${port + 1}` },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: `http://127.0.0.1:${port}` },
    ];
    for (const [method, path, body] of ROUTES.filter(([method]) => method === 'POST')) {
      for (const headers of crossSite) {
        const refused = await call(port, method, path, { authorization, body, headers });
        expect(refused.status, `${path} ${JSON.stringify(headers)}`).toBe(403);
        expect(refused.body.errors?.[0]).toMatchObject({ code: 'DENIED', message: expect.stringContaining('another site') });
      }
    }
    // Nothing was pinned by the refused requests.
    expect((await call(port, 'GET', '/admin/pins', { authorization })).body).toEqual({ pins: [] });
    const sameSite = await call(port, 'POST', '/admin/pin', { authorization, body: { registry: 'registry.test' }, headers: { origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' } });
    expect(sameSite.status).toBe(200);
    // Behind a reverse proxy that rewrites Host, the browser's own word for it counts.
    const proxied = await call(port, 'POST', '/admin/unpin', { authorization, body: { registry: 'registry.test' }, headers: { origin: 'https://layover.example', 'sec-fetch-site': 'same-origin' } });
    expect(proxied.status).toBe(200);
    const typed = await call(port, 'POST', '/admin/verify', { authorization, body: {}, headers: { 'sec-fetch-site': 'none' } });
    expect(typed.status).toBe(200);
    const cli = await call(port, 'POST', '/admin/prune', { authorization, body: {} });
    expect(cli.status).toBe(200);
    // Reading is not changing: a link from elsewhere still shows the stats.
    const linked = await call(port, 'GET', '/admin/stats', { authorization, headers: { 'sec-fetch-site': 'cross-site' } });
    expect(linked.status).toBe(200);
  });

  it('malformed digests and references with a clear 400, and purges nothing', async () => {
    const { port, token } = await layoverWith([]);
    const authorization = `Bearer ${token}`;
    const bad: Array<[unknown, string, RegExp]> = [
      [{ digest: 'sha256:1234' }, 'DIGEST_INVALID', /expected a digest/],
      [{ digest: `sha256:${'A'.repeat(64)}` }, 'DIGEST_INVALID', /lower-case/],
      [{ digest: `md5:${'a'.repeat(32)}` }, 'DIGEST_INVALID', /expected a digest/],
      [{ registry: 'not a host' }, 'NAME_INVALID', /host name/],
      [{ registry: 'registry.test', repository: 'UPPER/case' }, 'NAME_INVALID', /repository/],
      [{ registry: 'registry.test', repository: 'app', tag: '-bad' }, 'NAME_INVALID', /tag/],
      [{ registry: 'registry.test', tag: 'v1' }, 'NAME_INVALID', /needs a repository/],
      [{ digest: `sha256:${'a'.repeat(64)}`, registry: 'registry.test' }, 'NAME_INVALID', /either/],
      [{}, 'NAME_INVALID', /expected/],
      [{ registry: 42 }, 'NAME_INVALID', /string/],
      [{ registry: 'registry.test', force: 'yes' }, 'NAME_INVALID', /force/],
    ];
    for (const [body, code, message] of bad) {
      const answer = await call(port, 'POST', '/admin/purge', { authorization, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.errors?.[0]?.code, JSON.stringify(body)).toBe(code);
      expect(answer.body.errors?.[0]?.message, JSON.stringify(body)).toMatch(message);
    }
    const notJson = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/admin/pin', headers: { authorization, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end('{"registry":');
    });
    expect(notJson).toBe(400);
    const ok = await call(port, 'POST', '/admin/purge', { authorization, body: { registry: 'docker.io', repository: 'alpine', tag: '3.20' } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ scope: 'registry-1.docker.io/library/alpine:3.20', removed: 0, freedBytes: 0 });
  });
});
