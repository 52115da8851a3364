/** The job of ./pull-loop-client.ts for a bench's images: every image, its platform manifests by digest, every blob checked. */
import type { Bench } from '../../bench/bench.js';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { expect } from 'vitest';
import type { NodeScriptResult } from '../../bench/node-script.js';
import type { PullImage, PullJob, PullSummary } from './pull-loop-client.js';

export function pullJobFor(bench: Bench, options: { caFile: string; origin: string; clients: number; stopFile: string; maxSeconds: number }): PullJob {
  const images: PullImage[] = Object.values(bench.images).map((image) => ({
    repository: image.repository,
    tag: image.tag,
    digest: image.digest,
    mediaType: image.mediaType,
    // An index's platform manifests by digest (all platforms, where a real pull takes one).
    manifests: image.manifests.filter((m) => m.digest !== image.digest).map((m) => ({ digest: m.digest, mediaType: m.mediaType })),
    blobs: image.blobs.map((b) => ({ digest: b.digest, size: b.size })),
  }));
  return { caFile: options.caFile, origin: options.origin, host: INTERCEPTED_HOST, clients: options.clients, images, stopFile: options.stopFile, maxSeconds: options.maxSeconds };
}

/**
 * The pull loop's one summary after a rolling restart: no pull failed (the samples say how one did),
 * and more than `minimumPulls` completed, so that the restarts met clients in the middle of pulls.
 */
export async function summaryWithoutFailures(pulling: Promise<NodeScriptResult<PullSummary>>, minimumPulls: number): Promise<PullSummary> {
  const { lines, output } = await pulling;
  expect(lines, output).toHaveLength(1);
  const summary = lines[0]!;
  expect(summary.failureSamples, `${summary.failedPulls} failed pulls of ${summary.pulls + summary.failedPulls}`).toEqual([]);
  expect(summary.failedPulls).toBe(0);
  expect(summary.pulls).toBeGreaterThan(minimumPulls);
  return summary;
}
