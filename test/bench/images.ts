/**
 * Test images without a daemon: OCI image layouts written by hand (layers from ./tar.ts, gzip from
 * node:zlib, sha256 from node:crypto), then pushed to the sandbox's registry with skopeo, directly
 * (`registry-direct.test`, resolved by the upstream resolver, never intercepted by Layover).
 *
 * Every byte derives from `seed`, so a run is reproducible; change the seed for different digests.
 * The set (IMAGE_KEYS):
 *   oci     bench/oci:v1       OCI manifest, linux/amd64, layers [base, own]
 *   multi   bench/multi:v1     OCI index of linux/amd64 and linux/arm64 (pushed with --all)
 *   docker  bench/docker:v1    Docker schema 2 (pushed with --format v2s2), layers [base, own]
 *   nested  a/b/c:v1           OCI manifest in a nested repository name, layers [base, own]
 *   large   bench/large:v1     one layer of 30 MiB of incompressible (AES-CTR) bytes
 * `base` is the same blob in oci, docker and nested: a cache keyed by digest stores it once.
 * pushRandomImages adds any number of images of random layers (`bench/random:r<i>`), for misses.
 * Digests, sizes and raw manifests are read back from the registry after the push.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Registry } from './registry.js';
import type { Sandbox } from './sandbox.js';
import { type SkopeoOptions, inspectRaw, skopeo } from './skopeo.js';
import { tar } from './tar.js';

export const IMAGE_KEYS = ['oci', 'multi', 'docker', 'nested', 'large'] as const;
export type ImageKey = (typeof IMAGE_KEYS)[number];

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const LARGE_LAYER_BYTES = 30 * 1024 * 1024;
export const DIRECT_HOST = 'registry-direct.test';

export interface BlobRef {
  digest: string;
  size: number;
  mediaType: string;
}

export interface ManifestRef extends BlobRef {
  /** The manifest exactly as the registry serves it. */
  raw: string;
  platform?: { os: string; architecture: string };
  config: BlobRef;
  layers: BlobRef[];
}

export interface PushedImage {
  key: ImageKey;
  repository: string;
  tag: string;
  /** The top manifest (an index for `multi`). */
  digest: string;
  mediaType: string;
  raw: string;
  /** The image manifests: the one itself, or each platform's of an index. */
  manifests: ManifestRef[];
  /** Every config and layer blob, once each. */
  blobs: BlobRef[];
  /** `host/repository:tag`, e.g. ref('registry.test') for a pull through Layover. */
  ref(host: string): string;
}

export type PushedImages = Partial<Record<ImageKey, PushedImage>>;

interface Spec {
  repository: string;
  platforms: Array<{ os: string; architecture: string }>;
  format?: 'v2s2';
  large?: boolean;
}

const SPECS: Record<ImageKey, Spec> = {
  oci: { repository: 'bench/oci', platforms: [{ os: 'linux', architecture: 'amd64' }] },
  multi: { repository: 'bench/multi', platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }] },
  docker: { repository: 'bench/docker', platforms: [{ os: 'linux', architecture: 'amd64' }], format: 'v2s2' },
  nested: { repository: 'a/b/c', platforms: [{ os: 'linux', architecture: 'amd64' }] },
  large: { repository: 'bench/large', platforms: [{ os: 'linux', architecture: 'amd64' }], large: true },
};

const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Writes an OCI image layout for `key` under `dir` (tag v1) and returns its path. */
export function writeLayout(dir: string, key: ImageKey, seed = 'layover'): string {
  const spec = SPECS[key];
  const layout = join(dir, key);
  const blobsDir = join(layout, 'blobs', 'sha256');
  mkdirSync(blobsDir, { recursive: true });
  const put = (data: Buffer | string, mediaType: string): BlobRef => {
    const bytes = Buffer.from(data);
    const digest = sha256(bytes);
    writeFileSync(join(blobsDir, digest.slice(7)), bytes);
    return { digest, size: bytes.length, mediaType };
  };
  const layer = (files: Record<string, Buffer>): { blob: BlobRef; diffId: string } => {
    const plain = tar(Object.entries(files).map(([path, content]) => ({ path, content })));
    return { blob: put(gzipSync(plain, { level: 1 }), 'application/vnd.oci.image.layer.v1.tar+gzip'), diffId: sha256(plain) };
  };

  const manifests = spec.platforms.map((platform) => {
    const tagline = `${seed} ${key} ${platform.os}/${platform.architecture}`;
    const layers = spec.large
      ? [layer({ 'large.bin': incompressible(`${seed} ${key}`, LARGE_LAYER_BYTES) })]
      : [layer({ 'etc/layover-base': Buffer.from(`${seed} shared base layer\n`) }), layer({ [`etc/layover-${key}`]: Buffer.from(`${tagline}\n`) })];
    const config = put(
      JSON.stringify({
        created: '2026-01-01T00:00:00Z',
        architecture: platform.architecture,
        os: platform.os,
        config: { Env: ['PATH=/usr/bin:/bin'], Labels: { 'test.layover': tagline } },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      }),
      'application/vnd.oci.image.config.v1+json',
    );
    const manifest = put(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layers.map((l) => l.blob) }), OCI_MANIFEST);
    return { ...manifest, platform };
  });
  const top = manifests.length === 1 ? manifests[0]! : put(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }), OCI_INDEX);
  const { platform: _platform, ...descriptor } = top as BlobRef & { platform?: unknown };
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }),
  );
  return layout;
}

/** Bytes that gzip cannot shrink, the same for the same label. */
function incompressible(label: string, size: number): Buffer {
  const key = createHash('sha256').update(label).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

export interface PushOptions {
  keys?: readonly ImageKey[];
  seed?: string;
  /** Where the layouts go; default `<sandbox.dir>/layouts`. */
  layoutDir?: string;
  /** Pass the registry's resolver's resolv.conf: pushes go by name, bypassing Layover. */
  resolvConf: string;
}

/**
 * Builds the layouts and pushes them to `registry` as `registry-direct.test/<repository>:v1`, trusting
 * `caDir` (a directory holding the test CA as ca.crt).
 */
export async function pushImages(sandbox: Sandbox, registry: Registry, caDir: string, options: PushOptions): Promise<PushedImages> {
  const layoutDir = options.layoutDir ?? join(sandbox.dir, 'layouts');
  const pushed: PushedImages = {};
  const access: SkopeoOptions = { certDir: caDir, creds: registry.credentials, resolvConf: options.resolvConf };
  for (const key of options.keys ?? IMAGE_KEYS) {
    const spec = SPECS[key];
    const layout = writeLayout(layoutDir, key, options.seed);
    const target = `docker://${DIRECT_HOST}/${spec.repository}:v1`;
    const args = ['copy', '--dest-tls-verify=true', '--dest-cert-dir', caDir, ...(access.creds ? ['--dest-creds', access.creds] : [])];
    if (spec.platforms.length > 1) args.push('--all');
    if (spec.format) args.push('--format', spec.format);
    await skopeo(sandbox, [...args, `oci:${layout}:v1`, target], { resolvConf: options.resolvConf });
    pushed[key] = await describe(sandbox, key, spec.repository, access);
  }
  return pushed;
}

export interface RandomImage {
  repository: string;
  tag: string;
  /** The OCI manifest as pushed (skopeo copies an OCI layout to the registry unchanged). */
  manifest: BlobRef & { raw: string };
  /** The config and the layers. */
  blobs: BlobRef[];
  /** `<layout>/blobs/sha256`: every blob's bytes, named by hex digest (for checking Range answers). */
  blobsDir: string;
}

export interface RandomImagesOptions {
  /** How many images; image i is `<repository>:r<i>`. */
  count: number;
  /** Sizes of image i's layers (before gzip, which stores them: random bytes do not shrink). */
  layerSizes: (index: number) => number[];
  repository?: string;
  seed?: string;
  layoutDir?: string;
  resolvConf: string;
  /** skopeo copies at once; default 4. */
  parallel?: number;
}

/**
 * Fresh images of random layers, for cache misses: nothing in the bench's usual images shares a byte
 * with them. Layers are gzip streams (level 0) of a one-file tar, so skopeo pushes them as they are.
 */
export async function pushRandomImages(sandbox: Sandbox, registry: Registry, caDir: string, options: RandomImagesOptions): Promise<RandomImage[]> {
  const repository = options.repository ?? 'bench/random';
  const seed = options.seed ?? 'layover';
  const layoutDir = options.layoutDir ?? join(sandbox.dir, 'random-layouts');
  const images = Array.from({ length: options.count }, (_, i) => writeRandomLayout(layoutDir, repository, `r${i}`, options.layerSizes(i), `${seed} random ${i}`));
  const creds = registry.credentials ? ['--dest-creds', registry.credentials] : [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < images.length; i = next++) {
      const { layout, image } = images[i]!;
      await skopeo(sandbox, ['copy', '--dest-tls-verify=true', '--dest-cert-dir', caDir, ...creds, `oci:${layout}:${image.tag}`, `docker://${DIRECT_HOST}/${repository}:${image.tag}`], {
        resolvConf: options.resolvConf,
      });
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? 4 }, worker));
  return images.map((i) => i.image);
}

function writeRandomLayout(dir: string, repository: string, tag: string, layerSizes: number[], label: string): { layout: string; image: RandomImage } {
  const layout = join(dir, tag);
  const blobsDir = join(layout, 'blobs', 'sha256');
  mkdirSync(blobsDir, { recursive: true });
  const put = (data: Buffer | string, mediaType: string): BlobRef => {
    const bytes = Buffer.from(data);
    const digest = sha256(bytes);
    writeFileSync(join(blobsDir, digest.slice(7)), bytes);
    return { digest, size: bytes.length, mediaType };
  };
  const diffIds: string[] = [];
  const layers = layerSizes.map((size, i) => {
    const plain = tar([{ path: `random-${i}.bin`, content: incompressible(`${label} layer ${i}`, size) }]);
    diffIds.push(sha256(plain));
    return put(gzipSync(plain, { level: 0 }), 'application/vnd.oci.image.layer.v1.tar+gzip');
  });
  const config = put(
    JSON.stringify({ created: '2026-01-01T00:00:00Z', architecture: 'amd64', os: 'linux', config: { Labels: { 'test.layover': label } }, rootfs: { type: 'layers', diff_ids: diffIds } }),
    'application/vnd.oci.image.config.v1+json',
  );
  const raw = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers });
  const manifest = { ...put(raw, OCI_MANIFEST), raw };
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const { raw: _raw, ...descriptor } = manifest;
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
  return { layout, image: { repository, tag, manifest, blobs: [config, ...layers], blobsDir } };
}

async function describe(sandbox: Sandbox, key: ImageKey, repository: string, access: SkopeoOptions): Promise<PushedImage> {
  const ref = (host: string): string => `${host}/${repository}:v1`;
  const raw = await inspectRaw(sandbox, `docker://${ref(DIRECT_HOST)}`, access);
  const top = JSON.parse(raw) as { mediaType: string; manifests?: Array<BlobRef & { platform: { os: string; architecture: string } }> };
  const digest = sha256(raw);
  const manifests: ManifestRef[] = [];
  const parse = (text: string, platform?: { os: string; architecture: string }): ManifestRef => {
    const m = JSON.parse(text) as { mediaType: string; config: BlobRef; layers: BlobRef[] };
    return { digest: sha256(text), size: Buffer.byteLength(text), mediaType: m.mediaType, raw: text, config: m.config, layers: m.layers, ...(platform ? { platform } : {}) };
  };
  if (top.manifests) {
    for (const child of top.manifests) {
      const { os, architecture } = child.platform;
      manifests.push(parse(await inspectRaw(sandbox, `docker://${DIRECT_HOST}/${repository}@${child.digest}`, access), { os, architecture }));
    }
  } else {
    manifests.push(parse(raw));
  }
  const blobs = new Map<string, BlobRef>();
  for (const m of manifests) for (const b of [m.config, ...m.layers]) blobs.set(b.digest, { digest: b.digest, size: b.size, mediaType: b.mediaType });
  return { key, repository, tag: 'v1', digest, mediaType: top.mediaType, raw, manifests, blobs: [...blobs.values()], ref };
}
