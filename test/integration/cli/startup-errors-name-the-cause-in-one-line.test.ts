/**
 * Issue 10, "what a new user hits": a held cache lock printed a stack trace, and an unwritable data
 * directory was reported as "ports below 1024 need root". A failed start now prints one line naming the
 * real cause (the directory, the address) and exits 2. The real `layover serve` as a child process; the
 * permission cases run it as the unprivileged user nobody (the test runs as root, as the suite does).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CLI, runCli } from '../../helpers/run-cli.js';

const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1', '--dns', 'off', '--http', 'off', '--proxy', 'off'];
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

/** The one line a failed start must print: nothing else on stderr, no stack frame, exit code 2. */
function expectOneLine(result: { status: number | null; stderr: string }): string {
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.status, result.stderr).toBe(2);
  return lines[0]!;
}

const runAsNobody = (args: string[]) => {
  const result = spawnSync(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8', timeout: 20_000, uid: NOBODY, gid: NOBODY });
  return { status: result.status, stderr: result.stderr };
};

describe('a failed start prints one line that names the cause', () => {
  it('a data directory another Layover holds: names the directory, for serve and for the cache commands', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'layover-locked-'));
    const first = spawn(process.execPath, [CLI, 'serve', ...SAFE, '--https', '127.0.0.1:0', '--data-dir', dataDir], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'inherit'] });
    onTestFinished(() => void first.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      let output = '';
      first.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()).includes('layover is listening') && resolve());
      first.on('exit', () => reject(new Error(`the first Layover ended:\n${output}`)));
    });
    const second = expectOneLine(runCli(['serve', ...SAFE, '--https', '127.0.0.1:0', '--data-dir', dataDir]));
    expect(second).toContain(join(dataDir, 'cache'));
    expect(second).toContain(`process ${first.pid}`);
    expect(second).toContain('another Layover');
    expect(expectOneLine(runCli(['cache', 'stats', ...SAFE, '--data-dir', dataDir]))).toContain(join(dataDir, 'cache'));
  });

  it('an address in use: names the address', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void holder.close());
    const { port } = holder.address() as { port: number };
    const line = expectOneLine(runCli(['serve', ...SAFE, '--https', `127.0.0.1:${port}`, '--data-dir', mkdtempSync(join(tmpdir(), 'layover-inuse-'))]));
    expect(line).toContain(`127.0.0.1:${port}`);
    expect(line).toContain('in use');
  });

  // Root may write anywhere and bind any port: only an unprivileged user meets these causes, and only
  // root can become one (spawn with uid nobody). CI and `npm test` here run as root.
  it.skipIf(!isRoot)('an unwritable data directory: names the directory, not the ports below 1024', () => {
    const parent = mkdtempSync(join(tmpdir(), 'layover-unwritable-')); // 0700, owned by root
    const dataDir = join(parent, 'data');
    const line = expectOneLine(runAsNobody(['serve', ...SAFE, '--https', '127.0.0.1:0', '--data-dir', dataDir]));
    expect(line).toContain(dataDir);
    expect(line).toContain('permission denied');
    expect(line).not.toContain('1024');
  });

  // Switching to nobody needs root; as root itself Layover could bind port 443 and there would be nothing to refuse.
  it.skipIf(!isRoot)('a port below 1024 without the privilege: says so, and names the address', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'layover-lowport-'));
    spawnSync('chown', [`${NOBODY}:${NOBODY}`, dataDir]);
    const line = expectOneLine(runAsNobody(['serve', ...SAFE, '--https', '127.0.0.1:443', '--data-dir', dataDir]));
    expect(line).toContain('127.0.0.1:443');
    expect(line).toContain('ports below 1024 need root or CAP_NET_BIND_SERVICE');
  });
});
