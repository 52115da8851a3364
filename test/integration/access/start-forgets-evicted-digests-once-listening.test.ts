/**
 * A start forgets the repositories of digests the cache no longer holds (their records would grow
 * with every digest ever pulled), once Layover listens: at 100,000 blobs the look-ups held a start's
 * main thread ~60 ms.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const REPO = ['registry.test/team/app'];

describe('a start with access records of evicted digests', () => {
  let running: RunningLayover | undefined;
  let dataDir: string | undefined;
  afterEach(async () => {
    await running?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('listens first, then forgets those records and keeps the cached ones', async () => {
    const first = await startLayover();
    running = first;
    dataDir = first.dataDir;
    const bytes = Buffer.from('a layer that stays cached');
    const cached = digestOf(bytes);
    const evicted = digestOf(Buffer.from('a layer evicted long ago'));
    await first.app.cache.put(cached, bytes, { size: bytes.length, mediaType: null, kind: 'blob', source: REPO[0]! });
    await first.app.cache.setRecord(`access:member:${cached}`, REPO);
    await first.app.cache.setRecord(`access:member:${evicted}`, REPO);
    await first.close();
    running = undefined;
    running = await startLayover({ 'data-dir': dataDir });
    const { cache } = running.app;
    // Listening, and nothing looked at yet: the forgetting begins after the turn that listened.
    expect(cache.getRecord(`access:member:${evicted}`)).toEqual(REPO);
    await expect.poll(() => cache.getRecord(`access:member:${evicted}`)).toBeUndefined();
    expect(cache.getRecord(`access:member:${cached}`)).toEqual(REPO);
    expect(running.logs.some((line) => line.msg === 'forgot where evicted digests were seen' && line.forgotten === 1)).toBe(true);
  });
});
