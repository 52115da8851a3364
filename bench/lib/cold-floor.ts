import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MiB } from './blobs.js';

/**
 * What a cold fill cannot go below on this machine, measured after the cases (the pages a write takes
 * are free again afterwards, and would make a case run next faster): the seconds to write `bytes` to a
 * new file in `dir`, 1 MiB per write, as a fill stores its blob; and to hash them with SHA-256 on one
 * thread, as a fill verifies them. On a VM whose host takes free memory back, a write to a new file
 * pays for each page cache page at its first touch.
 */
export async function coldFloor(dir: string, bytes: number): Promise<{ writeSeconds: number; hashSeconds: number }> {
  const chunk = Buffer.alloc(MiB, 0x5a);
  const path = join(dir, 'cold-floor');
  const file = await open(path, 'wx');
  const writeStart = performance.now();
  try {
    for (let written = 0; written < bytes; written += chunk.length) await file.write(chunk, 0, Math.min(chunk.length, bytes - written));
  } finally {
    await file.close();
  }
  const writeSeconds = (performance.now() - writeStart) / 1000;
  await rm(path);
  const hash = createHash('sha256');
  const hashStart = performance.now();
  for (let hashed = 0; hashed < bytes; hashed += chunk.length) hash.update(chunk);
  hash.digest();
  return { writeSeconds, hashSeconds: (performance.now() - hashStart) / 1000 };
}
