/**
 * The bench plus test/fixtures/redirecting-registry.mjs: `redirecting.test` (127.0.0.6) is an
 * intercepted registry whose blob GETs redirect, `storage.test` (127.0.0.7, allowed through
 * REDIRECT_ALLOW_NETWORKS) its storage host, `alias.test` another name at the registry's address, and the same fixture also listens on 127.0.0.1:8443,
 * Layover's own loopback address, where no storage fetch may ever arrive, and on 127.0.0.6:8443,
 * the registry's own address at another port (another service). `rebind.test` resolves
 * to 127.0.0.1 for the DNS-based variant of that. Blobs are computed here on our own and checked
 * against what the fixture announces.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Digest } from '../../../src/registry/digest.js';
import { signedPath, type StorageRedirect } from '../../../src/proxy/redirects/signed-url.js';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { FlagValue, LogLine } from '../../bench/layover-process.js';
import { curl, type CurlResult } from '../proxy/curl.js';
import { type FixtureProcess, startFixture } from '../../bench/fixture-process.js';

export const REDIRECTING_HOST = 'redirecting.test';
export const STORAGE_HOST = 'storage.test';
export const REBIND_HOST = 'rebind.test';
/** Another name at the redirecting registry's own address (a vhost of one ingress). */
export const ALIAS_HOST = 'alias.test';
export const LOOPBACK_LISTEN = '127.0.0.1:8443';
/** The redirecting registry's address at a port that is not the registry's. */
export const REGISTRY_OTHER_PORT_LISTEN = '127.0.0.6:8443';
const REDIRECTING_ADDRESS = '127.0.0.6';
const STORAGE_ADDRESS = '127.0.0.7';
const BLOB_COUNT = 13;
export const BLOB_SIZE = 256 * 1024;
const FIXTURE = fileURLToPath(new URL('../../fixtures/redirecting-registry.mjs', import.meta.url));

export interface FixtureBlob {
  digest: Digest;
  bytes: Buffer;
}

/** Blob `i` of the fixture: the same generator as redirecting-registry.mjs, written out again on purpose. */
export function fixtureBlob(i: number): FixtureBlob {
  const key = createHash('sha256').update(`layover-redirecting-${i}`).digest();
  const bytes = createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(BLOB_SIZE));
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, bytes };
}

export interface RedirectingBench {
  bench: Bench;
  fixture: FixtureProcess;
  /** Restarts Layover (a new data dir: an empty cache) with these flags over the defaults. */
  restartLayover(flags: Record<string, FlagValue>): Promise<void>;
  /** curl inside the sandbox through Layover's DNS and CA; `args` go before the URL. */
  get(url: string, args?: string[]): Promise<CurlResult>;
  /** `https://redirecting.test/v2/<mode>/blobs/<digest>`. */
  blobUrl(mode: string, digest: Digest): string;
  /** A docker.proxy URL signed with the running Layover's key. */
  sign(redirect: StorageRedirect): string;
  /** Fixture requests whose path ends with `digest`. */
  requestsFor(digest: Digest): Array<Record<string, unknown>>;
  /** Waits until the fixture has logged everything sent to it so far (every listener's lines share one stream). */
  syncFixture(): Promise<void>;
  /** Layover's every log line and stderr, as one string: for "never logged" assertions. */
  layoverText(): string;
  requestLines(): LogLine[];
}

const baseFlags = (flags: Record<string, FlagValue>): Record<string, FlagValue> => ({
  registries: `${INTERCEPTED_HOST} ${REDIRECTING_HOST}`,
  'redirect-allow-networks': `${STORAGE_ADDRESS}/32`,
  ...flags,
});

export async function startRedirectingBench(flags: Record<string, FlagValue> = {}): Promise<RedirectingBench> {
  const bench = await startBench({
    images: [],
    extraRecords: { [REDIRECTING_HOST]: [REDIRECTING_ADDRESS], [ALIAS_HOST]: [REDIRECTING_ADDRESS], [STORAGE_HOST]: [STORAGE_ADDRESS], [REBIND_HOST]: ['127.0.0.1'] },
    layover: { flags: baseFlags(flags) },
  });
  try {
    const tls = await bench.ca.issue('redirecting', [REDIRECTING_HOST, ALIAS_HOST, STORAGE_HOST, REBIND_HOST, REDIRECTING_ADDRESS, STORAGE_ADDRESS, '127.0.0.1']);
    const listen = [`${REDIRECTING_ADDRESS}:443`, `${STORAGE_ADDRESS}:443`, LOOPBACK_LISTEN, REGISTRY_OTHER_PORT_LISTEN].flatMap((l) => ['--listen', l]);
    const fixture = await startFixture(bench.sandbox, FIXTURE, [...listen, '--cert', tls.certFile, '--key', tls.keyFile, '--blobs', String(BLOB_COUNT), '--size', String(BLOB_SIZE)]);
    const announced = (fixture.ready.blobs as Array<{ digest: string }>).map((b) => b.digest);
    const expected = Array.from({ length: BLOB_COUNT }, (_, i) => fixtureBlob(i).digest);
    if (JSON.stringify(announced) !== JSON.stringify(expected)) throw new Error(`redirecting-registry blobs differ: ${JSON.stringify(announced)}`);
    return {
      bench,
      fixture,
      async restartLayover(more) {
        await bench.layover?.stop();
        await bench.startLayover({ flags: baseFlags(more) });
      },
      get: (url, args = []) => curl(bench, url, args),
      blobUrl: (mode, digest) => `https://${REDIRECTING_HOST}/v2/${mode}/blobs/${digest}`,
      sign(redirect) {
        const key = readFileSync(join(bench.layover!.dataDir, 'redirect.key'));
        return `https://docker.proxy${signedPath(key, redirect)}`;
      },
      requestsFor: (digest) => fixture.requests().filter((r) => String(r.path).endsWith(digest)),
      syncFixture: () => fixture.sync(`https://${LOOPBACK_LISTEN}`, bench.ca.certFile),
      layoverText: () => `${JSON.stringify(bench.layover!.logs())}\n${bench.layover!.output()}`,
      requestLines: () => bench.layover!.logs().filter((l) => l.msg === 'request'),
    };
  } catch (error) {
    await bench.close();
    throw error;
  }
}

/** The error code and detail of an OCI error body. */
export function ociError(result: CurlResult): { code?: string; message?: string; detail?: Record<string, unknown> } {
  try {
    return (JSON.parse(result.body.toString('utf8')) as { errors: Array<{ code: string; message: string; detail?: Record<string, unknown> }> }).errors[0] ?? {};
  } catch {
    return {};
  }
}
