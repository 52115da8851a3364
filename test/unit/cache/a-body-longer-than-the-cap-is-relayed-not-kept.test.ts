/**
 * A fill never writes more than the cache may hold (CACHE_MAX_SIZE): an upstream that sends more,
 * announced or not, or without end, would otherwise fill the disk for a blob that cannot stay. Past the
 * cap the fill turns into a relay (as on a full disk): its readers get every byte, verified; the cache
 * keeps nothing; with no reader, the download ends there.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blob, handSource, meta, MiB, openCache, tally, until } from './cache-fixture.js';

const CAP = 2 * MiB;

/** The bytes in the spool directory now (the fill's temp file). */
async function spooled(dir: string): Promise<number> {
  const tmp = join(dir, 'tmp');
  // A file listed may be gone by its stat (the fill dropped meanwhile).
  const sizes = await Promise.all((await readdir(tmp)).map(async (name) => (await stat(join(tmp, name)).catch(() => ({ size: 0 }))).size));
  return sizes.reduce((sum, size) => sum + size, 0);
}

describe('a fill of a body longer than the cap', () => {
  it('without a length, relays it to its readers past the cap, every byte verified, having written no more than the cap', async () => {
    const { cache, dir, logs } = await openCache({ maxSize: CAP });
    const { bytes, digest } = blob(6 * MiB + 5);
    const source = handSource();
    const fill = cache.fill(digest, source, meta());
    const first = tally(fill.reader());
    let second: ReturnType<typeof tally> | undefined;
    let largest = 0;
    for (let offset = 0; offset < bytes.length; offset += MiB / 2) {
      source.write(bytes.subarray(offset, offset + MiB / 2));
      await until(() => first.bytes().length >= Math.min(offset + MiB / 2, bytes.length) - 1);
      largest = Math.max(largest, await spooled(dir));
      // A reader that came while the fill was still the cache's follows it through the relay.
      if (offset === MiB) second = tally(fill.reader());
    }
    source.end();
    expect((await first.ended).equals(bytes)).toBe(true);
    expect((await second!.ended).equals(bytes)).toBe(true);
    expect(largest).toBeGreaterThan(MiB);
    expect(largest).toBeLessThanOrEqual(CAP);
    await expect(fill.done).rejects.toMatchObject({ reason: 'too-large' });
    expect(cache.stat(digest)).toBeUndefined();
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(logs.find((line) => line.msg === 'cache fill dropped')).toMatchObject({ digest, reason: 'too-large', relay: true, readers: 2 });
  });

  it('with a length above the cap, relays it from the first byte and writes nothing', async () => {
    const { cache, dir, logs } = await openCache({ maxSize: CAP });
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.write(bytes.subarray(0, MiB));
    await until(() => reader.bytes().length >= MiB - 1);
    await expect(fill.done).rejects.toMatchObject({ reason: 'too-large' });
    expect(await spooled(dir)).toBe(0);
    // A newcomer would need bytes the relay no longer holds: it makes a download of its own.
    await expect(tally(fill.reader()).ended).rejects.toMatchObject({ reason: 'too-large' });
    expect(cache.activeFill(digest)).toBeUndefined();
    source.end(bytes.subarray(MiB));
    expect((await reader.ended).equals(bytes)).toBe(true);
    expect(logs.find((line) => line.msg === 'cache fill dropped')).toMatchObject({ digest, reason: 'too-large', relay: true, readers: 1 });
  });

  it('without a reader, ends an endless body at the cap and keeps nothing', async () => {
    const { cache, dir } = await openCache({ maxSize: CAP });
    const { digest } = blob(1);
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += 256 * 1024;
        this.push(Buffer.alloc(256 * 1024, 1));
      },
    });
    const fill = cache.fill(digest, endless, meta());
    await expect(fill.done).rejects.toMatchObject({ reason: 'too-large' });
    await until(() => endless.destroyed);
    // What was read ahead of the fill, no more.
    expect(sent).toBeLessThan(CAP + 4 * MiB);
    expect(cache.activeFill(digest)).toBeUndefined();
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('a body within the cap is kept as before', async () => {
    const { cache } = await openCache({ maxSize: CAP });
    const { bytes, digest } = blob(CAP);
    const fill = cache.fill(digest, Readable.from([bytes.subarray(0, MiB), bytes.subarray(MiB)]), meta());
    await expect(fill.done).resolves.toMatchObject({ digest, size: CAP });
    expect(cache.stat(digest)).toMatchObject({ size: CAP });
  });
});
