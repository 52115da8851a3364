/**
 * The netns bench (test/bench/) with a second, hostile upstream next to the real distribution
 * registry: test/fixtures/hostile-manifest-registry.mjs on 127.0.0.5:443 as hostile-manifests.test,
 * serving the bench's `oci` image manifest (as text/html) and chosen error statuses. Layover
 * intercepts both registry.test and hostile-manifests.test.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { startFixture, type FixtureProcess } from '../../bench/fixture-process.js';

export const HOSTILE_HOST = 'hostile-manifests.test';
const HOSTILE_ADDRESS = '127.0.0.5';
const FIXTURE = fileURLToPath(new URL('../../fixtures/hostile-manifest-registry.mjs', import.meta.url));

/** `registries`: more names Layover intercepts (e.g. DIRECT_HOST, the same registry under another name). */
export async function startHostileManifestBench(options: { registries?: string[] } = {}): Promise<{ bench: Bench; hostile: FixtureProcess }> {
  const bench = await startBench({
    images: ['oci'],
    extraRecords: { [HOSTILE_HOST]: [HOSTILE_ADDRESS] },
    layover: { flags: { registries: [INTERCEPTED_HOST, HOSTILE_HOST, ...(options.registries ?? [])].join(' ') } },
  });
  try {
    const manifestFile = join(bench.sandbox.dir, 'oci-manifest.json');
    writeFileSync(manifestFile, bench.images.oci!.raw);
    const tls = await bench.ca.issue('hostile-manifests', [HOSTILE_HOST, HOSTILE_ADDRESS]);
    const hostile = await startFixture(bench.sandbox, FIXTURE, ['--listen', `${HOSTILE_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--manifest', manifestFile]);
    if (JSON.stringify(hostile.ready.manifests) !== JSON.stringify([bench.images.oci!.digest])) throw new Error(`the fixture serves ${JSON.stringify(hostile.ready.manifests)}`);
    return { bench, hostile };
  } catch (error) {
    await bench.close();
    throw error;
  }
}
