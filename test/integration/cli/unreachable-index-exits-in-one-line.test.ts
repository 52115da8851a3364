/**
 * A replica that cannot reach its shared index at start says so in one line naming the backend and
 * its host, never the password, and exits 2 (issue 11). The real `layover serve` as a child process;
 * its bucket is s3rver in this process (a shared index needs shared blobs), its index a loopback port
 * where nothing listens.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { holdRefusingPort } from '../../helpers/refusing-port.js';
import { CLI } from '../../helpers/run-cli.js';
import { startS3rver } from '../../unit/cache/s3rver-fixture.js';

function serve(env: Record<string, string>): Promise<{ status: number | null; stderr: string }> {
  const args = ['serve', '--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1', '--dns', 'off', '--http', 'off', '--proxy', 'off', '--https', '127.0.0.1:0'];
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => child.on('exit', (status) => (clearTimeout(timer), resolve({ status, stderr }))));
}

it.each(['redis', 'postgres'])('a %s index nobody answers for: one line naming it, exit 2', async (kind) => {
  const s3 = await startS3rver();
  const closed = await holdRefusingPort();
  onTestFinished(closed.release);
  const port = closed.port;
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-cli-index-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  const { status, stderr } = await serve({
    BLOB_STORE: `s3://${s3.bucket}/cli?endpoint=${s3.endpoint}&region=us-east-1`,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    CACHE_INDEX: `${kind}://layover:index-password-1234@127.0.0.1:${port}/${kind === 'redis' ? '0' : 'layover'}`,
    LAYOVER_DATA_DIR: dataDir,
  });
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(status, stderr).toBe(2);
  expect(lines[0]).toContain(kind);
  expect(lines[0]).toContain(`127.0.0.1:${port}`);
  expect(stderr).not.toContain('index-password-1234');
  expect(stderr).not.toMatch(/^\s+at /m);
}, 40_000);
