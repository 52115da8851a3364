import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { cacheIndexSuite } from '../../unit/cache/cache-index-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'layover-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

cacheIndexSuite('sqlite', {
  open: ({ retryMs, logger }) => openCacheIndex({ kind: 'sqlite' }, { sqliteFile: join(dir, 'index.sqlite'), logger, retryMs }),
});
