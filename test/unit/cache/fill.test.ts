import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { Fill, FillError } from '../../../src/cache/blob-cache.js';
import { blob, collect, handSource, meta, MiB, openCache, tally, until } from './cache-fixture.js';

/** Nothing of a dropped fill may remain: no temp file, no blob file, no entry. */
async function expectNothingLeft(dir: string): Promise<void> {
  expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  const fans = await readdir(join(dir, 'blobs', 'sha256')).catch(() => []);
  for (const fan of fans) expect(await readdir(join(dir, 'blobs', 'sha256', fan))).toEqual([]);
}

describe('fills that must not be committed', () => {
  it.each([
    ['digest-mismatch', (bytes: Buffer) => [Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes.at(-1)! ^ 1])])], undefined],
    ['truncated', (bytes: Buffer) => [bytes.subarray(0, -10)], 'size'],
    ['size-mismatch', (bytes: Buffer) => [bytes, Buffer.from('x')], 'size'],
  ] as const)('%s: rejects, leaves nothing, and its readers error', async (reason, body, withSize) => {
    const { cache, dir, logs } = await openCache();
    const { bytes, digest } = blob(2 * MiB + 5);
    const source = handSource();
    const fill = cache.fill(digest, source, meta(withSize ? { size: bytes.length } : {}));
    const reader = tally(fill.reader());
    for (const chunk of body(bytes)) source.write(chunk);
    source.end();
    await expect(fill.done).rejects.toMatchObject({ name: 'FillError', reason });
    await expect(reader.ended).rejects.toMatchObject({ reason });
    // Never the final byte of a bad body, and never the whole length.
    expect(reader.bytes().length).toBeLessThan(bytes.length);
    expect(cache.stat(digest)).toBeUndefined();
    expect(cache.activeFill(digest)).toBeUndefined();
    await expectNothingLeft(dir);
    expect(logs.find((l) => l.msg === 'cache fill dropped')).toMatchObject({ digest, reason });
    // A later reader of the dead fill errors at once.
    await expect(collect(fill.reader())).rejects.toMatchObject({ reason });
  });

  it('source-error: an upstream reset drops the fill and keeps the cause', async () => {
    const { cache, dir } = await openCache();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.write(bytes.subarray(0, MiB));
    await until(() => reader.bytes().length > 0);
    source.destroy(new Error('ECONNRESET'));
    const error = (await fill.done.catch((e: unknown) => e)) as FillError;
    expect(error.reason).toBe('source-error');
    expect((error.cause as Error).message).toBe('ECONNRESET');
    await expect(reader.ended).rejects.toThrow();
    await expectNothingLeft(dir);
  });

  it('source-error in the turn the fill began (its pipeline is built a microtask later): dropped with the cause, nothing unheard', async () => {
    const { cache, dir } = await openCache();
    const { bytes, digest } = blob(MiB);
    const source = handSource();
    // As undici does it: in an I/O callback, where Node runs the next ticks (a destroyed stream's
    // 'error') before the microtasks (the fill's pipeline); in a promise job the order is the other way.
    const { fill, reader } = await new Promise<{ fill: Fill; reader: ReturnType<typeof tally> }>((resolve) =>
      setImmediate(() => {
        const began = cache.fill(digest, source, meta({ size: bytes.length }));
        resolve({ fill: began, reader: tally(began.reader()) });
        source.destroy(new Error('ECONNRESET'));
      }),
    );
    await expect(fill.done).rejects.toMatchObject({ reason: 'source-error', cause: { message: 'ECONNRESET' } });
    await expect(reader.ended).rejects.toMatchObject({ reason: 'source-error' });
    await expectNothingLeft(dir);
  });

  it('stall: a source that goes quiet is dropped and destroyed', async () => {
    const { cache, dir } = await openCache({ stallTimeoutMs: 150 });
    const { bytes, digest } = blob(MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.write(bytes.subarray(0, 1000));
    await expect(fill.done).rejects.toMatchObject({ reason: 'stall' });
    await expect(reader.ended).rejects.toMatchObject({ reason: 'stall' });
    expect(source.destroyed).toBe(true);
    await expectNothingLeft(dir);
  });

  it('close() just after a fill began drops it as closed', async () => {
    const { cache, dir } = await openCache();
    const { digest } = blob(10);
    const source = handSource();
    const fill = cache.fill(digest, source, meta());
    const closed = cache.close();
    await expect(fill.done).rejects.toMatchObject({ reason: 'closed' });
    await closed;
    expect(source.destroyed).toBe(true);
    await expectNothingLeft(dir);
  });

  it('close() drops fills in progress', async () => {
    const { cache, dir } = await openCache();
    const { digest } = blob(10);
    const source = handSource();
    const fill = cache.fill(digest, source, meta());
    source.write(Buffer.alloc(5));
    await cache.close();
    await expect(fill.done).rejects.toMatchObject({ reason: 'closed' });
    expect(source.destroyed).toBe(true);
    await expectNothingLeft(dir);
  });
});

describe('readers of an active fill', () => {
  it('a second source for a digest already filling joins that fill, and is destroyed: nothing would ever read it', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(1000);
    const first = handSource();
    const fill = cache.fill(digest, first, meta({ size: bytes.length }));
    const second = handSource();
    expect(cache.fill(digest, second, meta({ size: bytes.length })).digest).toBe(digest);
    expect(second.destroyed).toBe(true);
    first.end(bytes);
    await fill.done;
    expect(cache.stat(digest)).toBeDefined();
  });

  it('receive bytes before the fill ends', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(4 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const follower = tally(cache.activeFill(digest)!.reader());
    source.write(bytes.subarray(0, 2 * MiB));
    await until(() => follower.bytes().length > 0);
    const early = follower.bytes();
    expect(early.length).toBeLessThanOrEqual(2 * MiB);
    expect(early.equals(bytes.subarray(0, early.length))).toBe(true);
    expect(cache.stats().activeFills).toBe(1);
    source.end(bytes.subarray(2 * MiB));
    expect((await follower.ended).equals(bytes)).toBe(true);
    await fill.done;
  });

  it.each([
    ['with a known size', true],
    ['without a size', false],
  ])('do not get the final byte before verification (%s)', async (_name, known) => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(MiB + 3);
    const source = handSource();
    const fill = cache.fill(digest, source, meta(known ? { size: bytes.length } : {}));
    const reader = tally(fill.reader());
    source.write(bytes); // every byte has arrived, but the body has not ended: not verified yet
    await until(() => reader.bytes().length === bytes.length - 1);
    await sleep(100);
    expect(reader.bytes().length).toBe(bytes.length - 1);
    source.end();
    expect((await reader.ended).equals(bytes)).toBe(true);
  });

  it('ten concurrent readers get identical bytes from one source', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(5 * MiB + 123);
    const first = handSource();
    const fill = cache.fill(digest, first, meta({ size: bytes.length }));
    const readers = [];
    const others = [];
    for (let i = 0; i < 10; i++) {
      // What a proxy route does on a miss: fill() again (single-flight), destroying its own source.
      const spare = handSource();
      others.push(spare);
      const shared = cache.fill(digest, spare, meta({ size: bytes.length }));
      expect(shared).toBe(fill);
      readers.push(tally(shared.reader()));
    }
    for (let offset = 0; offset < bytes.length; offset += 256 * 1024) {
      first.write(bytes.subarray(offset, offset + 256 * 1024));
      await sleep(1);
    }
    first.end();
    const results = await Promise.all(readers.map((r) => r.ended));
    for (const result of results) expect(result.equals(bytes)).toBe(true);
    // The spare sources were never read.
    for (const spare of others) expect(spare.readableFlowing).toBeNull();
    expect((await fill.done).size).toBe(bytes.length);
  });

  it('serve ranges, including ones that stop before the final byte', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const head = tally(fill.reader({ start: 10, end: MiB }));
    const tail = tally(fill.reader({ start: 2 * MiB, end: 3 * MiB - 1 }));
    source.write(bytes.subarray(0, 2 * MiB));
    // The head range's bytes are all there, but its last one waits for verification like the blob's.
    await until(() => head.bytes().length === MiB - 10);
    expect(head.bytes().equals(bytes.subarray(10, MiB))).toBe(true);
    source.end(bytes.subarray(2 * MiB));
    expect((await head.ended).equals(bytes.subarray(10, MiB + 1))).toBe(true);
    expect((await tail.ended).equals(bytes.subarray(2 * MiB))).toBe(true);
  });

  it('never completes a range of a bad body, even one that stops short of the final byte', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const head = tally(fill.reader({ start: 0, end: 99 }));
    const wrong = Buffer.from(bytes);
    wrong[0]! ^= 0xff;
    source.write(wrong.subarray(0, 2 * MiB));
    await until(() => head.bytes().length === 99);
    source.end(wrong.subarray(2 * MiB));
    await expect(head.ended).rejects.toMatchObject({ reason: 'digest-mismatch' });
    expect(head.bytes().length).toBeLessThan(100);
  });

  it('a reader that starts late reads back from the file what is no longer in memory, then keeps up', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(12 * MiB + 5);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const early = tally(fill.reader());
    // Well past what a fill keeps in memory (the chunks queued for the disk).
    for (let offset = 0; offset < 9 * MiB; offset += MiB) source.write(bytes.subarray(offset, offset + MiB));
    // The newest byte waits for the next one.
    await until(() => early.bytes().length === 9 * MiB - 1);
    const late = tally(fill.reader());
    const middle = tally(fill.reader({ start: 3 * MiB + 7, end: 10 * MiB }));
    source.end(bytes.subarray(9 * MiB));
    expect((await early.ended).equals(bytes)).toBe(true);
    expect((await late.ended).equals(bytes)).toBe(true);
    expect((await middle.ended).equals(bytes.subarray(3 * MiB + 7, 10 * MiB + 1))).toBe(true);
    await fill.done;
  });

  it('a reader that goes away does not abort the fill', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const quitter = fill.reader();
    const stayer = tally(fill.reader());
    source.write(bytes.subarray(0, 2 * MiB));
    await new Promise((resolve) => quitter.once('data', resolve));
    quitter.destroy();
    source.end(bytes.subarray(2 * MiB));
    expect((await fill.done).size).toBe(bytes.length);
    expect((await stayer.ended).equals(bytes)).toBe(true);
  });

  it('a reader asked for after the commit reads the stored blob', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(1000);
    const fill = cache.fill(digest, Readable.from([bytes]), meta());
    await fill.done;
    await sleep(10);
    expect((await collect(fill.reader({ start: 1, end: 998 }))).equals(bytes.subarray(1, 999))).toBe(true);
  });
});
