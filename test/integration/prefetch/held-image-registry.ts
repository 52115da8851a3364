/**
 * Fixture upstream for the prefetch tests that stop a prefetch half-way: a tiny anonymous registry
 * on 127.0.0.7 serving one image (`app:v1`, an OCI manifest of a config and five layers) whose blob
 * GETs the test holds and releases, and the referrers API for it (one signature artifact), which
 * the distribution registry 2.8 lacks; with `understateLayer` the manifest lies about a layer's size; with `redirectBlobs`, blob GETs are 307s to a signed-looking
 * storage path on its own origin (as registries send clients to their storage hosts). No real program can be paused on demand before it answers,
 * so this is a fixture; Layover (buildApp in this process), its resolver (dnsmasq), TLS and the
 * admin API's HTTP are real.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../../../src/registry/digest.js';
import { createTestCa } from '../../bench/test-ca.js';
import { HeldAnswers } from '../../helpers/held-answers.js';
import { listenWithLoopbackTwin, releaseLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import { type InterceptedFixture, interceptFixture } from '../../helpers/intercepted-fixture.js';
import type { RunningLayover } from '../../helpers/start-layover.js';

export const HELD_IMAGE_HOST = 'held-image.test';
const ADDRESS = '127.0.0.7';
const BLOB_SIZE = 256 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export interface HeldImageRegistry {
  readonly port: number;
  readonly caFile: string;
  /** The config first, then the layers. */
  readonly blobs: readonly string[];
  /** What the referrers API lists for the image's manifest: a signature artifact and its blobs. */
  readonly referrer: { readonly manifest: string; readonly blobs: readonly string[] };
  /** `method path` of every request, in order. */
  readonly seen: string[];
  /** The digests of blob GETs that reached it (held or answered). */
  blobGets(): string[];
  /** The digests of GETs of its storage path (after a redirect). */
  storageGets(): string[];
  /** From now on blob GETs wait (headers and all) until release(). */
  readonly gate: HeldAnswers;
  close(): Promise<void>;
}

export async function startHeldImageRegistry(options: { redirectBlobs?: boolean; understateLayer?: boolean } = {}): Promise<HeldImageRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-held-image-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('held-image', [HELD_IMAGE_HOST]);
  const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const contents = new Map<string, Buffer>();
  const blobs = Array.from({ length: 6 }, () => {
    const bytes = randomBytes(BLOB_SIZE);
    contents.set(sha256(bytes), bytes);
    return sha256(bytes);
  });
  const descriptor = (digest: string, mediaType: string): object => ({ mediaType, digest, size: BLOB_SIZE });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor(blobs[0]!, 'application/vnd.oci.image.config.v1+json'),
      // `understateLayer`: a hostile manifest that says its first layer is 1000 bytes.
      layers: blobs.slice(1).map((digest, i) => ({ ...descriptor(digest, 'application/vnd.oci.image.layer.v1.tar+gzip'), ...(i === 0 && options.understateLayer ? { size: 1000 } : {}) })),
    }),
  );
  const manifestDigest = sha256(manifest);
  const manifests = new Map<string, { body: Buffer; mediaType: string }>([[manifestDigest, { body: manifest, mediaType: OCI_MANIFEST }]]);
  const put = (bytes: Buffer): string => {
    contents.set(sha256(bytes), bytes);
    return sha256(bytes);
  };
  const empty = put(Buffer.from('{}'));
  const signature = put(Buffer.from(`signature of ${manifestDigest}\n`));
  const artifact = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.signature.v1',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
      layers: [{ mediaType: 'application/vnd.example.signature.v1', digest: signature, size: contents.get(signature)!.length }],
      subject: { mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length },
    }),
  );
  manifests.set(sha256(artifact), { body: artifact, mediaType: OCI_MANIFEST });
  const referrers = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(artifact), size: artifact.length, artifactType: 'application/vnd.example.signature.v1' }] }),
  );
  const noReferrers = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
  const seen: string[] = [];
  const gate = new HeldAnswers();

  const server = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    const url = req.url ?? '';
    seen.push(`${req.method} ${url}`);
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    if (url === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const reference = /^\/v2\/app\/manifests\/([^/?]+)$/.exec(url)?.[1];
    const served = reference === 'v1' ? manifests.get(manifestDigest) : reference ? manifests.get(reference) : undefined;
    if (served) {
      res.writeHead(200, { 'content-type': served.mediaType, 'content-length': served.body.length, 'docker-content-digest': sha256(served.body) });
      return void res.end(req.method === 'HEAD' ? undefined : served.body);
    }
    // A registry with the referrers API answers every digest, with an empty index when nothing refers to it.
    const referred = /^\/v2\/app\/referrers\/([^/?]+)$/.exec(url)?.[1];
    if (referred) return void res.writeHead(200, { 'content-type': OCI_INDEX }).end(referred === manifestDigest ? referrers : noReferrers);
    const asked = /^\/v2\/app\/blobs\/([^/?]+)$/.exec(url)?.[1];
    if (asked && options.redirectBlobs && req.method === 'GET' && contents.has(asked)) {
      return void res.writeHead(307, { location: `/storage/${asked}?X-Amz-Signature=held-${seen.length}`, 'content-length': '0' }).end();
    }
    const blob = asked ?? /^\/storage\/([^/?]+)\?/.exec(url)?.[1];
    const bytes = blob ? contents.get(blob) : undefined;
    if (!bytes) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}');
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), 'docker-content-digest': blob! };
    if (req.method === 'HEAD') return void res.writeHead(200, headers).end();
    const answer = (): void => void res.writeHead(200, headers).end(bytes);
    if (gate.holding) gate.hold(answer);
    else answer();
  });
  const port = await listenWithLoopbackTwin(server, ADDRESS);
  const gets = (prefix: string): string[] => seen.filter((line) => line.startsWith(`GET ${prefix}`)).map((line) => line.slice(`GET ${prefix}`.length).split('?')[0]!);
  return {
    port,
    caFile: ca.certFile,
    blobs,
    referrer: { manifest: sha256(artifact), blobs: [empty, signature] },
    seen,
    blobGets: () => gets('/v2/app/blobs/'),
    storageGets: () => gets('/storage/'),
    gate,
    close: () =>
      new Promise<void>((resolve) => {
        gate.release();
        void releaseLoopbackTwin(port);
        server.close(() => resolve());
        server.closeAllConnections();
        rmSync(dir, { recursive: true, force: true });
      }),
  };
}

export interface HeldImageBench {
  readonly upstream: HeldImageRegistry;
  readonly layover: RunningLayover;
  /** `held-image.test:<port>/app:v1`. */
  readonly image: string;
  close(): Promise<void>;
}

export interface HeldImageBenchOptions {
  /** Blob GETs are redirected to the fixture's storage path. */
  readonly redirectBlobs?: boolean;
  /** The manifest says its first layer is 1000 bytes (it is 256 KiB). */
  readonly understateLayer?: boolean;
  /** Layover's `prefetch:` list names the image (PREFETCH). */
  readonly prefetchList?: boolean;
  /** Blob GETs are held from the start (before Layover's first prefetch round). */
  readonly holdBlobs?: boolean;
  /** More environment for Layover (e.g. LAYOVER_HTTP2). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The fixture, and Layover (buildApp, in this process) intercepting it (test/helpers/intercepted-fixture.ts). */
export async function startHeldImageBench(options: HeldImageBenchOptions = {}): Promise<HeldImageBench> {
  const upstream = await startHeldImageRegistry({ redirectBlobs: options.redirectBlobs ?? false, understateLayer: options.understateLayer ?? false });
  if (options.holdBlobs) upstream.gate.start();
  const image = `${HELD_IMAGE_HOST}:${upstream.port}/app:v1`;
  const given = Object.fromEntries(Object.entries(options.env ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const env = { ...given, ...(options.prefetchList ? { PREFETCH: image } : {}) };
  let intercepted: InterceptedFixture;
  try {
    intercepted = await interceptFixture({ host: HELD_IMAGE_HOST, address: ADDRESS, port: upstream.port, caFile: upstream.caFile, env });
  } catch (error) {
    await upstream.close();
    throw error;
  }
  const close = async (): Promise<void> => {
    await intercepted.close();
    await upstream.close();
  };
  return { upstream, layover: intercepted.layover, image, close };
}

/** Polls `check` until it holds; fails after `timeoutMs` (a bound for "at all", not a speed). */
export async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True once Layover's cache holds `digest` (its fill committed). */
export const committed = (bench: HeldImageBench, digest: string): boolean => bench.layover.app.cache.stat(digest as Digest) !== undefined;
