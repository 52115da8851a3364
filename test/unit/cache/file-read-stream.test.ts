import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { queryObjects } from 'node:v8';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { FileReadStream, FIRST_CHUNK } from '../../../src/cache/blob-stores/file-read-stream.js';
import { chunkBytesFor, countedSend } from '../../../src/cache/send-buffers.js';
import { collect, MiB, tempDir } from './cache-fixture.js';
import { serve } from './response-fixture.js';

async function file(bytes: Buffer): Promise<string> {
  const path = join(await tempDir(), 'blob');
  await writeFile(path, bytes);
  return path;
}

const finished = (stream: NodeJS.EventEmitter, event: string): Promise<void> => new Promise((resolve) => stream.once(event, () => resolve()));

describe('FileReadStream', () => {
  it('piped into a response: sends every byte even though the socket holds chunks until their write callback', async () => {
    const bytes = randomBytes(12 * MiB + 123);
    const path = await file(bytes);
    for (let round = 0; round < 2; round++) {
      const served = await serve(new FileReadStream(path, 0, bytes.length - 1));
      expect((await served.body).equals(bytes)).toBe(true);
      expect(await served.failure).toBeNull();
      expect(served.stream.fd).toBeNull();
    }
  });

  it('piped into a response: the first write is FIRST_CHUNK at most (its first byte waits for no more), the next ones whole buffers', async () => {
    const bytes = randomBytes(3 * MiB + 5);
    const path = await file(bytes);
    const served = await serve(new FileReadStream(path, 0, bytes.length - 1));
    expect((await served.body).equals(bytes)).toBe(true);
    expect(served.writes[0]).toBe(FIRST_CHUNK);
    // A download alone sends chunks of chunkBytesFor(1).
    expect(served.writes.slice(1, 3)).toEqual([chunkBytesFor(1), chunkBytesFor(1)]);
    expect(served.writes.reduce((sum, size) => sum + size, 0)).toBe(bytes.length);
  });

  it('piped alone, keeps two chunks written while the socket takes them; with other downloads under way, one', async () => {
    // More than the loopback's socket buffers hold, for a client that takes its time: the socket backs up.
    const bytes = randomBytes(16 * MiB);
    const path = await file(bytes);
    const alone = await serve(new FileReadStream(path, 0, bytes.length - 1));
    expect((await alone.body).equals(bytes)).toBe(true);
    expect(alone.mostInFlight()).toBe(2);

    // Four other downloads sending meanwhile (held open until the end of the test).
    let finish = (): void => undefined;
    const held = new Promise<void>((resolve) => (finish = resolve));
    const others = Array.from({ length: 4 }, () => countedSend(() => held));
    try {
      const shared = await serve(new FileReadStream(path, 0, bytes.length - 1));
      expect((await shared.body).equals(bytes)).toBe(true);
      expect(shared.mostInFlight()).toBe(1);
    } finally {
      finish();
      await Promise.all(others);
    }
  });

  it('piped: keeps nothing per chunk sent until the send ends (each wait for the socket is its own, and gone once over)', async () => {
    // 256 chunks of a download alone; the promises alive are counted early and late in the send.
    const bytes = randomBytes(64 * MiB);
    const path = await file(bytes);
    const served = await serve(new FileReadStream(path, 0, bytes.length - 1));
    const livePromisesAfter = async (writes: number): Promise<number> => {
      while (served.writes.length < writes) await new Promise((resolve) => setTimeout(resolve, 2));
      // After a full collection: what is still reachable.
      return queryObjects(Promise, { format: 'count' });
    };
    const early = await livePromisesAfter(16);
    const late = await livePromisesAfter(240);
    expect((await served.body).equals(bytes)).toBe(true);
    // A Promise.race against one promise lasting the whole send kept two per chunk (443 more here).
    expect(late - early).toBeLessThan(32);
  });

  it('piped or read: a range is exactly its bytes', async () => {
    const bytes = randomBytes(3 * MiB);
    const path = await file(bytes);
    const served = await serve(new FileReadStream(path, MiB - 7, 2 * MiB + 9));
    expect((await served.body).equals(bytes.subarray(MiB - 7, 2 * MiB + 10))).toBe(true);
    expect((await collect(new FileReadStream(path, 5, 5))).equals(bytes.subarray(5, 6))).toBe(true);
  });

  it('read any other way (pipeline with a transform, async iteration) gives the same bytes', async () => {
    const bytes = randomBytes(2 * MiB + 1);
    const path = await file(bytes);
    const through = new PassThrough();
    const chunks: Buffer[] = [];
    through.on('data', (chunk: Buffer) => chunks.push(chunk));
    await pipeline(new FileReadStream(path, 0, bytes.length - 1), through);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    expect((await collect(new FileReadStream(path, 0, bytes.length - 1))).equals(bytes)).toBe(true);
  });

  it('fails, piped or read, when the file is shorter than its range: never a short answer', async () => {
    const bytes = randomBytes(MiB + 10);
    const path = await file(bytes);
    await expect(collect(new FileReadStream(path, 0, 2 * MiB))).rejects.toThrow(/ends at byte/);
    const served = await serve(new FileReadStream(path, 0, 2 * MiB));
    expect((await served.failure)?.message).toMatch(/ends at byte/);
    await expect(served.body).rejects.toThrow();
  });

  it('is pending until open, and fails with ENOENT for a missing file', async () => {
    const path = await file(randomBytes(10));
    const stream = new FileReadStream(path, 0, 9);
    expect(stream.pending).toBe(true);
    await finished(stream, 'ready');
    expect(stream.pending).toBe(false);
    stream.destroy();
    const missing = new FileReadStream(`${path}.gone`, 0, 9);
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => missing.once('error', resolve));
    expect(error.code).toBe('ENOENT');
  });

  it('closes its file when destroyed in the middle of a piped send', async () => {
    const bytes = randomBytes(8 * MiB);
    const path = await file(bytes);
    const served = await serve(new FileReadStream(path, 0, bytes.length - 1));
    served.body.catch(() => undefined);
    // Opened maybe while the server was starting: 'ready' may have come already.
    if (served.stream.pending) await finished(served.stream, 'ready');
    const fd = served.stream.fd!;
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe(path);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const closed = finished(served.stream, 'close');
    served.stream.destroy();
    await closed;
    expect(served.stream.fd).toBeNull();
    // The number may be taken again by another file, never still be this one.
    const now = ((): string | null => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return null;
      }
    })();
    expect(now).not.toBe(path);
  });

  it('reads 256 KiB for a download alone, then smaller chunks the more downloads are sent at once, keeping their buffers within one budget', () => {
    expect(chunkBytesFor(1)).toBe(256 * 1024);
    expect(chunkBytesFor(2)).toBe(MiB);
    expect(chunkBytesFor(4)).toBe(MiB);
    expect(chunkBytesFor(5)).toBe(512 * 1024);
    expect(chunkBytesFor(8)).toBe(512 * 1024);
    expect(chunkBytesFor(48)).toBe(512 * 1024);
    expect(chunkBytesFor(49)).toBe(256 * 1024);
    expect(chunkBytesFor(96)).toBe(256 * 1024);
    expect(chunkBytesFor(100)).toBe(64 * 1024);
    for (const downloads of [1, 2, 4, 5, 8, 10, 24, 48, 50, 96, 200, 384]) expect(downloads * 2 * chunkBytesFor(downloads)).toBeLessThanOrEqual(48 * MiB);
    expect(chunkBytesFor(10_000)).toBe(64 * 1024);
  });
});
