import { createReadStream } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { hasherFor, type Digest } from '../registry/digest.js';

/** Every blob path reads and writes at least this much per system call (64 KiB chunks halve throughput). */
export const IO_CHUNK = 1024 * 1024;

export function isCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/**
 * Moves a complete, fsynced temp file to its final name. The directory is fsynced as well so that the
 * rename survives a power loss, not only a kill -9; without it the index could name a file that is gone.
 */
export async function installFile(tmpPath: string, finalPath: string): Promise<void> {
  const dir = dirname(finalPath);
  await mkdir(dir, { recursive: true });
  await rename(tmpPath, finalPath);
  await syncDirectory(dir);
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `bytes` to a new file and fsyncs it. */
export async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The hex hash of a file under `digest`'s algorithm, and its size; null when the file is gone. */
export function hashFile(path: string, digest: Digest): Promise<{ hex: string; size: number } | null> {
  return hashBytes(createReadStream(path, { highWaterMark: IO_CHUNK }), digest);
}

/** The hex hash of a stream's bytes under `digest`'s algorithm, and their count; null when its source is gone (ENOENT). */
export async function hashBytes(stream: Readable, digest: Digest): Promise<{ hex: string; size: number } | null> {
  const hash = hasherFor(digest);
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (error) {
    if (isCode(error, 'ENOENT')) return null;
    throw error;
  }
  return { hex: hash.digest('hex'), size };
}
