import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BlobCache } from '../../../src/cache/blob-cache.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { digestOf } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { runCli } from '../../helpers/run-cli.js';

const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1'];

async function filledDataDir(): Promise<{ dataDir: string; digests: string[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-cache-cli-'));
  const cache = await BlobCache.open({ dir: join(dataDir, 'cache'), maxSize: 1 << 30, logger: captureLogger().logger, stallTimeoutMs: 5000 });
  const digests: string[] = [];
  for (const [i, size] of [1000, 2000, 3000].entries()) {
    const bytes = Buffer.alloc(size, i + 1);
    const digest = digestOf(bytes);
    await cache.put(digest, bytes, { size, mediaType: 'application/octet-stream', kind: 'blob', source: `registry.test/repo${i}` });
    digests.push(digest);
  }
  await cache.close();
  return { dataDir, digests };
}

describe('layover cache', () => {
  it('stats and ls show what is cached, most recent first', async () => {
    const { dataDir, digests } = await filledDataDir();
    const stats = runCli(['cache', 'stats', '--data-dir', dataDir, ...SAFE]);
    expect(stats.status, stats.stderr).toBe(0);
    expect(parse(stats.stdout)).toMatchObject({ entries: 3, bytes: 6000 });
    const ls = runCli(['cache', 'ls', '--data-dir', dataDir, ...SAFE]);
    const rows = ls.stdout.trim().split('\n').map((line) => line.split('\t'));
    expect(rows.map((r) => r[0])).toEqual([...digests].reverse());
    expect(rows[0]).toEqual([digests[2], '3000', 'blob', expect.any(String), 'registry.test/repo2']);
  });

  it('stats, ls and verify never evict, whatever CACHE_MAX_SIZE says', async () => {
    const { dataDir } = await filledDataDir();
    for (const sub of ['stats', 'ls', 'verify']) runCli(['cache', sub, '--data-dir', dataDir, '--cache-max-size', '1k', ...SAFE]);
    expect(parse(runCli(['cache', 'stats', '--data-dir', dataDir, ...SAFE]).stdout)).toMatchObject({ entries: 3 });
  });

  it('prune --max-size evicts least recently used blobs down to the size', async () => {
    const { dataDir, digests } = await filledDataDir();
    const pruned = runCli(['cache', 'prune', '--max-size', '4k', '--data-dir', dataDir, ...SAFE]);
    expect(pruned.status, pruned.stderr).toBe(0);
    expect(parse(pruned.stdout)).toMatchObject({ removed: 2, freedBytes: 3000 });
    const ls = runCli(['cache', 'ls', '--data-dir', dataDir, ...SAFE]);
    expect(ls.stdout.split('\t')[0]).toBe(digests[2]);
    expect(runCli(['cache', 'prune', '--max-size', 'lots', '--data-dir', dataDir, ...SAFE]).status).toBe(2);
  });

  it('verify re-hashes every blob and removes a corrupted one', async () => {
    const { dataDir, digests } = await filledDataDir();
    const layout = new CacheLayout(join(dataDir, 'cache'));
    writeFileSync(layout.blobPath(digests[1] as never), Buffer.alloc(2000, 9));
    const verified = runCli(['cache', 'verify', '--data-dir', dataDir, ...SAFE]);
    expect(verified.status, verified.stderr).toBe(0);
    expect(parse(verified.stdout)).toEqual({ checked: 3, removed: [digests[1]] });
    expect(runCli(['cache', 'ls', '--data-dir', dataDir, ...SAFE]).stdout).not.toContain(digests[1]);
  });

  it('refuses unknown sub-commands with exit 2; `cache` alone lists them with exit 0, like --help', () => {
    expect(runCli(['cache', 'explode', ...SAFE]).status).toBe(2);
    expect(runCli(['cache', 'stats', 'extra', ...SAFE]).status).toBe(2);
    expect(runCli(['cache', ...SAFE]).status).toBe(0);
  });
});
