/**
 * Layover (in this process) in front of the Docker Hub fixture: dnsmasq resolves
 * registry-1.docker.io to the fixture, Layover intercepts it at the fixture's port and trusts its CA.
 * `pull` asks for a tag and then each platform's manifest by digest, as a container runtime does.
 */
import { afterEach, beforeAll, expect } from 'vitest';
import type { Digest } from '../../../src/registry/digest.js';
import { type AskOptions, type FixtureAnswer, type InterceptedFixture, interceptFixture } from '../../helpers/intercepted-fixture.js';
import { DOCKER_HUB_HOST, FIXTURE_ADDRESS, type RatelimitUpstream, type RatelimitUpstreamOptions, startRatelimitUpstream } from './ratelimit-upstream.js';
import { type RealImages, realManifests } from './real-manifests.js';

/** What docker sends: every manifest type it can read. */
export const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export const REPOSITORY = 'library/multi';
export const tagPath = (tag: string): string => `/v2/${REPOSITORY}/manifests/${tag}`;

export interface BudgetBench {
  upstream: RatelimitUpstream;
  intercepted: InterceptedFixture;
  ask(path: string, options?: AskOptions): Promise<FixtureAnswer>;
  /** The tag's manifest (the index), then each platform's by digest; every answer a 200. */
  pull(tag: string, headers?: Record<string, string>): Promise<FixtureAnswer>;
  /** GET /metrics on Layover's HTTP listener. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/** Layover's environment; a function gets the fixture's port (a credential names its registry with it). */
export type BenchEnv = Record<string, string> | ((port: number) => Record<string, string>);

export async function startBudgetBench(images: RealImages, env: BenchEnv = {}, options: Partial<RatelimitUpstreamOptions> = {}): Promise<BudgetBench> {
  const upstream = await startRatelimitUpstream({ manifests: images.all, tags: { v1: images.index.digest, latest: images.index.digest, single: images.single.digest }, ...options });
  let intercepted: InterceptedFixture;
  try {
    intercepted = await interceptFixture({ host: DOCKER_HUB_HOST, address: FIXTURE_ADDRESS, port: upstream.port, caFile: upstream.caFile, env: typeof env === 'function' ? env(upstream.port) : env });
  } catch (error) {
    await upstream.close();
    throw error;
  }
  const ask = (path: string, askOptions: AskOptions = {}): Promise<FixtureAnswer> => intercepted.ask(path, { ...askOptions, headers: { accept: ACCEPT, ...askOptions.headers } });
  return {
    upstream,
    intercepted,
    ask,
    async pull(tag, headers = {}) {
      // A manifest is stored just after it is sent: the next pull must find it, as it would a moment later.
      const stored = async (answer: FixtureAnswer): Promise<void> => {
        expect(answer.status, answer.body.toString()).toBe(200);
        const digest = answer.headers['docker-content-digest'] as Digest;
        await expect.poll(() => intercepted.layover.app.cache.stat(digest)).toBeDefined();
      };
      const top = await ask(tagPath(tag), { headers });
      await stored(top);
      if (top.headers['docker-content-digest'] === images.index.digest) {
        for (const platform of images.platforms) await stored(await ask(`/v2/${REPOSITORY}/manifests/${platform.digest}`, { headers }));
      }
      return top;
    },
    async metrics() {
      const http = intercepted.layover.addresses.http!;
      const res = await fetch(`http://127.0.0.1:${http.port}/metrics`);
      expect(res.status).toBe(200);
      return res.text();
    },
    close: async () => {
      await intercepted.close();
      await upstream.close();
    },
  };
}

/** The request log lines of Layover for `path`, oldest first. */
export function requestLines(bench: BudgetBench, path: string): Array<Record<string, unknown>> {
  return bench.intercepted.layover.logs.filter((line) => line.msg === 'request' && line.url === path);
}

export interface BudgetBenches {
  /** The real image's manifests (after beforeAll). */
  readonly images: RealImages;
  /** A bench for this test, closed after it. */
  start(env?: BenchEnv, options?: Partial<RatelimitUpstreamOptions>): Promise<BudgetBench>;
}

/** Registers a test file's hooks: the real manifests fetched once, one bench per test, closed after it. */
export function budgetBenchPerTest(): BudgetBenches {
  let images: RealImages | undefined;
  let bench: BudgetBench | undefined;
  beforeAll(async () => {
    images = await realManifests();
  }, 180_000);
  afterEach(async () => {
    await bench?.close();
    bench = undefined;
  });
  return {
    get images() {
      if (!images) throw new Error('budgetBenchPerTest: the manifests are fetched in beforeAll');
      return images;
    },
    async start(env = {}, options = {}) {
      bench = await startBudgetBench(this.images, env, options);
      return bench;
    },
  };
}
