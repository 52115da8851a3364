/**
 * A replica of a shared index whose signing keys are missing stops at start in one line naming the
 * setting, and exits 2, rather than making keys of its own that the other replicas would not accept.
 * The real `layover serve` as a child process; its index a real redis-server, its bucket s3rver in
 * this process (a shared index needs shared blobs).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { CLI } from '../../helpers/run-cli.js';
import { startS3rver } from '../../unit/cache/s3rver-fixture.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 60_000);
afterAll(async () => {
  await redis?.close();
});

function serve(env: Record<string, string>): Promise<{ status: number | null; stderr: string }> {
  const args = ['serve', '--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1', '--dns', 'off', '--http', 'off', '--proxy', 'off', '--https', '127.0.0.1:0'];
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => child.on('exit', (status) => (clearTimeout(timer), resolve({ status, stderr }))));
}

async function replicaEnv(extra: Record<string, string>): Promise<{ env: Record<string, string>; dataDir: string }> {
  const s3 = await startS3rver();
  const dir = mkdtempSync(join(tmpdir(), 'layover-cli-keys-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, '');
  const dataDir = join(dir, 'data');
  const env = {
    BLOB_STORE: `s3://${s3.bucket}/keys?endpoint=${s3.endpoint}&region=us-east-1`,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    CACHE_INDEX: redis.url,
    LAYOVER_DATA_DIR: dataDir,
    HTPASSWD_FILE: htpasswd,
    ...extra,
  };
  return { env, dataDir };
}

it.each([
  ['REDIRECT_KEY_FILE', 'redirect.key', {}],
  ['CLIENT_TOKEN_KEY_FILE', 'client-token-key.pem', { CLIENT_AUTH: 'htpasswd', CLIENT_AUTH_CHALLENGE: 'bearer' }],
] as const)('without %s: one line naming it, exit 2, no key made', async (setting, file, extra) => {
  const { env, dataDir } = await replicaEnv(extra);
  const { status, stderr } = await serve(env);
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(status, stderr).toBe(2);
  expect(lines[0]).toMatch(new RegExp(`^layover: ${setting}: ${join(dataDir, file)} does not exist, and replicas sharing CACHE_INDEX must sign with one key`));
  expect(existsSync(join(dataDir, file))).toBe(false);
  expect(stderr).not.toContain(redis.password);
  expect(stderr).not.toMatch(/^\s+at /m);
}, 60_000);
