/**
 * Issue 13, start time: `layover serve` keeps V8's compiled code of its modules in
 * `<data-dir>/compile-cache` (Node's compile cache), a directory only Layover's user can enter, written
 * once it listens. Where it cannot be kept (the name taken by a file, a data directory that does not
 * exist yet) the start goes on without it. The real `layover serve` as a child process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CLI } from '../../helpers/run-cli.js';

const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1', '--dns', 'off', '--http', 'off', '--proxy', 'off', '--https', '127.0.0.1:0'];

/** Starts `layover serve` on `dataDir`, waits for it to listen, then stops it with SIGKILL (no exit handler runs). */
async function listensOnce(dataDir: string): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'serve', ...SAFE, '--data-dir', dataDir], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const seen = (chunk: Buffer): void => void ((output += chunk.toString()).includes('layover is listening') && resolve());
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.on('exit', () => reject(new Error(`layover ended before listening:\n${output}`)));
  });
  // The cache is written right after the listening line; give the write its moment, then kill.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'layover-compile-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file below `dir`. */
function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('layover serve and its compile cache', () => {
  it('writes it to <data-dir>/compile-cache, mode 0700, before any exit (a killed process keeps it)', { timeout: 60_000 }, async () => {
    const dataDir = tempDir();
    await listensOnce(dataDir);
    const cache = join(dataDir, 'compile-cache');
    expect(statSync(cache).mode & 0o777).toBe(0o700);
    // Node's cache holds an entry per compiled module: hundreds for a start of serve.
    expect(filesBelow(cache).length).toBeGreaterThan(100);
    // A second start reads it and still starts.
    await listensOnce(dataDir);
  });

  it('starts without it when the name is taken by a file', { timeout: 60_000 }, async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'compile-cache'), 'not a directory');
    await listensOnce(dataDir);
    expect(statSync(join(dataDir, 'compile-cache')).isFile()).toBe(true);
  });

  it('starts without it when the data directory does not exist yet, and uses it from the next start', { timeout: 60_000 }, async () => {
    const dataDir = join(tempDir(), 'new');
    await listensOnce(dataDir);
    expect(readdirSync(dataDir)).not.toContain('compile-cache');
    await listensOnce(dataDir);
    expect(filesBelow(join(dataDir, 'compile-cache')).length).toBeGreaterThan(100);
  });
});
