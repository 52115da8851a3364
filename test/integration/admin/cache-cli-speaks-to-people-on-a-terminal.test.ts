/**
 * `layover cache` on a terminal prints lines for a person; to a pipe, the YAML and tab-separated rows
 * scripts have always read. The terminal is a real pseudo-terminal made by util-linux's `script`.
 * Layover is not running here: the commands work on the files (a purge and a pin included).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BlobCache } from '../../../src/cache/blob-cache.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { CLI, runCli } from '../../helpers/run-cli.js';
import { pullImage } from '../../unit/admin/image-fixture.js';
import { blob } from '../../unit/cache/cache-fixture.js';

const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1'];
const quote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;

async function dataDirWithImage(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-cache-tty-'));
  const cache = await BlobCache.open({ dir: join(dataDir, 'cache'), maxSize: 1 << 30, logger: captureLogger().logger, stallTimeoutMs: 5000 });
  await pullImage(cache, 'app', 'v1', [blob(2048)]);
  await cache.close();
  return dataDir;
}

/** `layover cache ...` under a pseudo-terminal: what a person sees. */
function onTerminal(args: string[]): { status: number | null; output: string } {
  const command = [process.execPath, CLI, 'cache', ...args, ...SAFE].map(quote).join(' ');
  const result = spawnSync('script', ['-qec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', TERM: 'xterm' }, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, output: result.stdout.replaceAll('\r', '') };
}

describe('layover cache, for a person and for a script', () => {
  it('stats, ls, pin and purge speak in lines on a terminal', async () => {
    const dataDir = await dataDirWithImage();
    const stats = onTerminal(['stats', '--data-dir', dataDir]);
    expect(stats.status, stats.output).toBe(0);
    expect(stats.output).toMatch(/^entries +3$/m);
    expect(stats.output).toMatch(/^used +0\.0 MiB of /m);
    const pin = onTerminal(['pin', 'registry.test/app:v1', '--data-dir', dataDir]);
    expect(pin.output).toMatch(/^registry\.test\/app:v1: pinned; 3 blobs .* cached now/m);
    const ls = onTerminal(['ls', '--data-dir', dataDir]);
    expect(ls.output).toMatch(/^DIGEST +SIZE +KIND +LAST USED +SOURCE +PINNED$/m);
    expect(ls.output.split('\n').filter((line) => / yes$/.test(line))).toHaveLength(3);
    const purge = onTerminal(['purge', 'registry.test/app', '--data-dir', dataDir]);
    expect(purge.output).toMatch(/^registry\.test\/app: removed 0 blobs, freed 0\.0 MiB$/m);
    expect(purge.output).toMatch(/^ {2}kept sha256:[0-9a-f]{64} \(pinned\)$/m);
  }, 120_000);

  it('the same commands write YAML and rows to a pipe', async () => {
    const dataDir = await dataDirWithImage();
    expect(parse(runCli(['cache', 'stats', '--data-dir', dataDir, ...SAFE]).stdout)).toMatchObject({ entries: 3, pins: 0 });
    const rows = runCli(['cache', 'ls', '--data-dir', dataDir, ...SAFE]).stdout.trim().split('\n');
    expect(rows).toHaveLength(3);
    expect(rows[0]!.split('\t')).toEqual([expect.stringMatching(/^sha256:/), expect.any(String), 'manifest', expect.any(String), 'registry.test/app']);
    const purged = runCli(['cache', 'purge', 'registry.test/app:v1', '--data-dir', dataDir, ...SAFE]);
    expect(purged.status, purged.stderr).toBe(0);
    expect(parse(purged.stdout)).toMatchObject({ scope: 'registry.test/app:v1', removed: 3, kept: [] });
  }, 120_000);
});
