/**
 * kill -9 and the cache. During a fill (the `stall` repository of faulty-registry.mjs sends half the
 * blob and then nothing, with a long proxy_read_timeout so the fill is still running) Layover is
 * SIGKILLed with a partial temp file on disk; the next Layover on the same data dir must remove it at
 * start, index and serve nothing for that digest, and fill it afresh from `ok`. A blob whose fill had
 * committed before the SIGKILL must survive the restart and be a cache hit.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOB_SIZE, cacheLayout, cacheLs, curlBlob, delivered, type FaultyBench, fixtureBlob, isCommitted, startFaultyBench, tempFiles, until } from './faulty-bench.js';

let fb: FaultyBench;
beforeAll(async () => {
  fb = await startFaultyBench({ 'proxy-read-timeout': '120s' });
}, 120_000);
afterAll(() => fb?.bench.close());

const restart = () => fb.bench.startLayover({ dataDir: fb.bench.layover!.dataDir, flags: fb.flags });

describe('Layover killed with SIGKILL', () => {
  it('during a fill: the partial file is removed at the next start and never indexed or served', async () => {
    const { bench, faulty } = fb;
    const blob = fixtureBlob(0);
    const dataDir = bench.layover!.dataDir;
    const stalled = curlBlob(bench, 'stall', blob.digest);
    // The fixture has sent its half; wait until Layover has written a good part of it.
    await until('a growing temp file', () => {
      const [name] = tempFiles(dataDir);
      return name !== undefined && fileSize(join(cacheLayout(dataDir).tmpDir, name)) >= BLOB_SIZE / 4;
    });
    await bench.layover!.kill('SIGKILL');
    expect(delivered(await stalled)).toBe(false);
    // The crash left its partial file behind: that is what the next start must deal with.
    expect(tempFiles(dataDir)).toHaveLength(1);
    expect(isCommitted(dataDir, blob.digest)).toBe(false);

    const second = await restart();
    expect(tempFiles(dataDir)).toEqual([]);
    expect((await second.waitForLog((l) => l.msg === 'cache index reconciled')).tmpRemoved).toBe(1);
    await second.stop();
    expect(await cacheLs(bench, dataDir)).toEqual(new Map());

    await restart();
    const good = await curlBlob(bench, 'ok', blob.digest);
    expect(delivered(good), good.stderr).toBe(true);
    expect(good.body.equals(blob.bytes)).toBe(true);
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === blob.digest);
    const hit = await curlBlob(bench, 'ok', blob.digest);
    expect(hit.body.equals(blob.bytes)).toBe(true);
    await faulty.sync();
    // One GET before the crash, one after it (the partial file was not served), none for the hit.
    expect(faulty.blobRequests(blob.digest).map((r) => r.mode)).toEqual(['stall', 'ok']);
    await bench.layover!.stop();
    expect(await cacheLs(bench, dataDir)).toEqual(new Map([[blob.digest, BLOB_SIZE]]));
  }, 90_000);

  it('right after a committed fill: the blob survives the restart and is a hit', async () => {
    const { bench, faulty } = fb;
    const blob = fixtureBlob(1);
    const first = await restart();
    const got = await curlBlob(bench, 'ok', blob.digest);
    expect(delivered(got), got.stderr).toBe(true);
    await first.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === blob.digest);
    await first.kill('SIGKILL');

    const second = await restart();
    const hit = await curlBlob(bench, 'ok', blob.digest);
    expect(delivered(hit), hit.stderr).toBe(true);
    expect(hit.body.equals(blob.bytes)).toBe(true);
    await second.waitForLog((l) => l.msg === 'request' && l.digest === blob.digest && l.cache === 'hit');
    await faulty.sync();
    expect(faulty.blobRequests(blob.digest)).toHaveLength(1);
  }, 60_000);
});

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
