import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DirectoryLockedError } from '../../../src/cache/blob-cache.js';
import { collect, openCache, tempDir } from '../../unit/cache/cache-fixture.js';
import { digestOf, type Digest } from '../../../src/registry/digest.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const MiB = 1024 * 1024;

interface Run {
  child: ChildProcess;
  hanging: Promise<Digest>;
  committed: Digest[];
  stderr: string[];
}

function startChild(dir: string, maxSize: number): Run {
  const child = spawn(process.execPath, ['--import', join(here, 'register-ts.ts'), join(here, 'crash-child.ts'), dir, String(maxSize)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const run: Run = { child, committed: [], stderr: [], hanging: Promise.resolve('' as Digest) };
  child.stderr!.on('data', (chunk: Buffer) => run.stderr.push(chunk.toString()));
  run.hanging = new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`child exited early (${code ?? signal}): ${run.stderr.join('')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [word, digest] = line.split(' ') as [string, Digest];
      if (word === 'filling') resolve(digest);
      if (word === 'committed') run.committed.push(digest);
    });
  });
  return run;
}

async function killHard(run: Run, afterCommits: number, extraMs: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (run.committed.length < afterCommits && Date.now() < deadline) await sleep(5);
  await sleep(extraMs);
  const exited = new Promise((resolve) => run.child.once('exit', resolve));
  run.child.kill('SIGKILL');
  await exited;
}

describe('crash safety (kill -9 of a real process)', () => {
  it('loses nothing committed and serves nothing partial, however the process dies', { timeout: 90_000 }, async () => {
    const dir = join(await tempDir(), 'cache');
    const everCommitted = new Set<Digest>();
    // Different moments: right after start, a little later, and mid-stream of many commits.
    for (const [round, extraMs] of [0, 37, 151].entries()) {
      const run = startChild(dir, 1024 * MiB);
      const hanging = await run.hanging;
      // While the child lives, this process cannot open the directory.
      if (round === 0) await expect(openCache({ dir })).rejects.toBeInstanceOf(DirectoryLockedError);
      await killHard(run, 4, extraMs);
      expect(run.committed.length).toBeGreaterThanOrEqual(4);
      for (const digest of run.committed) everCommitted.add(digest);

      const { cache } = await openCache({ dir, maxSize: 1024 * MiB });
      expect(await readdir(join(dir, 'tmp'))).toEqual([]);
      expect(cache.stat(hanging)).toBeUndefined();
      for (const digest of everCommitted) expect(cache.stat(digest), `committed ${digest} lost`).toBeDefined();
      // Every entry is whole: its bytes hash to its name.
      expect(await cache.verify()).toMatchObject({ removed: [] });
      const sample = [...everCommitted].at(-1)!;
      expect(digestOf(await collect(cache.read(sample)!.stream))).toBe(sample);
      await cache.close();
    }
  });

  it('stays consistent when the kill lands during evictions', { timeout: 60_000 }, async () => {
    const dir = join(await tempDir(), 'cache');
    for (const extraMs of [23, 97]) {
      const run = startChild(dir, 4 * MiB);
      await run.hanging;
      await killHard(run, 8, extraMs);
      const { cache, logs } = await openCache({ dir, maxSize: 4 * MiB });
      expect(await readdir(join(dir, 'tmp'))).toEqual([]);
      expect(await cache.verify()).toMatchObject({ removed: [] });
      expect(cache.stats().bytes).toBeLessThanOrEqual(4 * MiB);
      // Files and index agree: a reopen finds nothing more to repair.
      await cache.close();
      const again = await openCache({ dir, maxSize: 4 * MiB });
      await again.cache.reconciled();
      expect(again.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ rowsDropped: 0, reindexed: 0, filesRemoved: 0 });
      expect(logs.some((l) => l.level >= 50)).toBe(false);
      await again.cache.close();
    }
  });
});
