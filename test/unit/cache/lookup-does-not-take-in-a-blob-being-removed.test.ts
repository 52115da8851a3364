/**
 * On a shared index, BlobReader.lookUp takes in a blob another replica committed from its row and
 * object. A removal this replica begins while it reads them (its eviction chose the digest) deletes
 * that row and object: the blob is not taken in, its removal not cancelled, and not answered as held. Real store, removals and
 * LRU; the index is a stand-in whose row read waits for the test, the one thing a shared backend
 * cannot be made to do on cue.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { BlobReader, type ReaderHost } from '../../../src/cache/blob-reader.js';
import { BlobRemovals } from '../../../src/cache/blob-removals.js';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { FileBlobStore } from '../../../src/cache/blob-stores/file.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { LruIndex } from '../../../src/cache/lru-index.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, tempDir, until } from './cache-fixture.js';

it('a blob whose removal began while its row was read is not taken in', async () => {
  const layout = new CacheLayout(await tempDir());
  await mkdir(layout.tmpDir, { recursive: true });
  const store = new FileBlobStore(layout);
  const { bytes, digest } = blob(10);
  const spool = layout.tmpPath(digest);
  await writeFile(spool, bytes);
  await store.beginUpload(digest, spool).commit(bytes.length);
  const row: BlobEntry = { digest, size: bytes.length, mediaType: null, kind: 'blob', created: 1, lastAccess: 1, source: 'quay.io/org/repo' };

  const { logger } = captureLogger();
  const lru = new LruIndex();
  const removals = new BlobRemovals(store, logger);
  let rowAsked = false;
  let answerRow: (entry: BlobEntry) => void = () => undefined;
  const index = { feed: {}, readEntry: () => ((rowAsked = true), new Promise<BlobEntry>((resolve) => (answerRow = resolve))) };
  const adopted: BlobEntry[] = [];
  const committed = { adopt: (entry: BlobEntry) => void adopted.push(entry) };
  const reader = new BlobReader({ logger, lru, index, store, removals, committed, isFilling: () => false } as unknown as ReaderHost);

  const looked = reader.lookUp(digest);
  await until(() => rowAsked);
  // This replica's eviction chose it meanwhile, while a reader here held it: its row is going, and its
  // object goes once that reader closes (the object is still there for lookUp's stat).
  removals.defer(digest);
  answerRow(row);
  expect(await looked).toBeUndefined();
  expect(adopted).toEqual([]);
  expect(lru.get(digest)).toBeUndefined();
  expect(removals.removing(digest)).toBe(true);
});
