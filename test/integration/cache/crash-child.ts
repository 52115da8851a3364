// Run by crash.test.ts as a separate process (node --import ./register-ts.ts crash-child.ts <dir> <maxSize>)
// so that it can be killed with SIGKILL at an arbitrary moment. It commits blobs as fast as it can, by
// put() and by fill(), reads some back (access-time flushes), and keeps one fill hanging half-written.
// Protocol on stdout, one line each: "filling <digest>" once the hanging fill has bytes on disk,
// "committed <digest>" after each commit resolved.
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { BlobCache } from '../../../src/cache/blob-cache.js';
import { createLogger } from '../../../src/log/logger.js';
import { digestOf, type Digest } from '../../../src/registry/digest.js';

const MiB = 1024 * 1024;
const [dir, maxSize] = [process.argv[2]!, Number(process.argv[3])];
const cache = await BlobCache.open({
  dir,
  maxSize,
  stallTimeoutMs: 600_000,
  accessFlushMs: 20,
  logger: createLogger('warn', process.stderr) as FastifyBaseLogger,
});

const hanging = randomBytes(3 * MiB);
const hangingSource = new PassThrough();
const hangingFill = cache.fill(digestOf(hanging), hangingSource, { size: hanging.length, mediaType: null, kind: 'blob', source: 'crash/hanging' });
const follower = hangingFill.reader();
hangingSource.write(hanging.subarray(0, 2 * MiB));
await new Promise((resolve) => follower.once('data', resolve));
process.stdout.write(`filling ${hangingFill.digest}\n`);

const committed: Digest[] = [];
for (let i = 0; ; i++) {
  const bytes = randomBytes(i % 2 === 0 ? 64 * 1024 : Math.floor(1.5 * MiB));
  const digest = digestOf(bytes);
  const meta = { mediaType: null, kind: 'blob' as const, source: 'crash/child' };
  if (i % 3 === 0) {
    await cache.put(digest, bytes, meta);
  } else {
    const chunks = [];
    for (let offset = 0; offset < bytes.length; offset += 256 * 1024) chunks.push(bytes.subarray(offset, offset + 256 * 1024));
    await cache.fill(digest, Readable.from(chunks), { ...meta, size: bytes.length }).done;
  }
  committed.push(digest);
  process.stdout.write(`committed ${digest}\n`);
  const older = committed[Math.floor(Math.random() * committed.length)]!;
  cache.read(older)?.stream.resume();
}
