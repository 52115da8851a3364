import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/registry/digest.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover with a small CACHE_MAX_SIZE: blobs stored past the cap are evicted by the cache
// itself; the status page shows the size against the cap and the evictions as /metrics counts them.
const KiB = 1024;

const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
});

interface View {
  metrics: Record<string, { text: string; value: number | null }>;
}

const base = (layover: RunningLayover): string => `http://127.0.0.1:${layover.addresses.http!.port}`;
const view = async (layover: RunningLayover): Promise<View> => (await (await fetch(`${base(layover)}/status.json`)).json()) as View;

function scraped(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('the status page’s cache numbers', () => {
  it('shows the cache size against its cap and the evictions /metrics counts, in the last hour too', async () => {
    const layover = await startLayover({ 'cache-max-size': `${256 * KiB}` });
    running.push(layover);
    for (let i = 0; i < 6; i++) {
      const bytes = randomBytes(100 * KiB);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
      await layover.app.cache.put(digest, bytes, { size: bytes.length, mediaType: null, kind: 'blob', source: 'registry.test/app' });
    }
    await layover.app.cache.prune();
    const metrics = await (await fetch(`${base(layover)}/metrics`)).text();
    const evictions = scraped(metrics, 'layover_evictions_total');
    const evictedBytes = scraped(metrics, 'layover_evicted_bytes_total');
    expect(evictions).toBeGreaterThan(0);

    const shown = (await view(layover)).metrics;
    expect(shown['evictions-total']?.value).toBe(evictions);
    expect(shown['evicted-bytes-total']?.value).toBe(evictedBytes);
    expect(shown['hour-evictions']?.value).toBe(evictions);
    expect(shown['hour-evicted-bytes']?.value).toBe(evictedBytes);
    expect(shown['cache-max-bytes']?.value).toBe(256 * KiB);
    expect(shown['cache-bytes']?.value).toBe(layover.app.cache.stats().bytes);
    expect(shown['cache-bytes']!.value!).toBeLessThanOrEqual(256 * KiB);
    expect(shown['cache-used']?.value).toBe(layover.app.cache.stats().bytes / (256 * KiB));
    // Read again, the evictions are not counted twice into the history.
    expect((await view(layover)).metrics['hour-evictions']?.value).toBe(evictions);
  });
});
