/**
 * What the prefetch tests share on top of test/bench/: the real `layover prefetch` run inside the
 * sandbox against the running `layover serve`, a pull of one platform with skopeo, counting blob
 * GETs at the upstream, and pushing an artifact that refers to an image (curl, straight to the
 * distribution registry) with the referrers tag schema's index, as registries without the referrers
 * API (2.8 has none) are given them.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bench } from '../../bench/bench.js';
import { DIRECT_HOST, type BlobRef, OCI_INDEX, OCI_MANIFEST } from '../../bench/images.js';
import { LAYOVER_CLI } from '../../bench/layover-process.js';
import type { ExecResult } from '../../bench/sandbox.js';
import { skopeo } from '../../bench/skopeo.js';

interface PrefetchRunOptions {
  /** The HTTP listener the CLI is told of; default the running Layover's. */
  http?: string;
  env?: Record<string, string>;
}

/** The command line of `layover prefetch ARGS` with the running Layover's data dir and HTTP listener. */
export function prefetchCommandLine(bench: Bench, args: string[], options: PrefetchRunOptions = {}): string[] {
  return [process.execPath, LAYOVER_CLI, 'prefetch', '--data-dir', bench.layover!.dataDir, '--http', options.http ?? '127.0.0.1:80', ...args];
}

/** `layover prefetch ARGS` inside the sandbox (not a terminal: one line per finished item). */
export function runPrefetch(bench: Bench, args: string[], options: PrefetchRunOptions = {}): Promise<ExecResult> {
  const [node, ...argv] = prefetchCommandLine(bench, args, options);
  return bench.sandbox.exec(node!, argv, { env: options.env ?? {}, timeoutMs: 120_000 });
}


/** skopeo copy of one platform of `ref` through Layover (skopeo's --override-arch picks it from the index). */
export function pullPlatform(bench: Bench, ref: string, architecture: string, dest: string): Promise<ExecResult> {
  return skopeo(bench.sandbox, ['--override-os', 'linux', '--override-arch', architecture, 'copy', '--src-tls-verify=true', '--src-cert-dir', bench.layover!.certDir, `docker://${ref}`, `dir:${dest}`]);
}

/** The digests of the blob GETs the upstream logged since the last clear (after its log caught up). */
export async function upstreamBlobGets(bench: Bench): Promise<string[]> {
  await bench.registry.sync();
  return bench.registry
    .requests()
    .filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'))
    .map((r) => r.path.split('/blobs/')[1]!.split('?')[0]!);
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export interface PushedReferrer {
  /** The artifact manifest (its subject: the image). */
  manifest: BlobRef;
  /** Its one layer, e.g. a signature. */
  layer: BlobRef;
}

/**
 * Pushes an artifact manifest whose subject is `subject` (an image manifest in `repository`), and the
 * tag schema's index `sha256-<hex of subject>` listing it.
 */
export async function pushReferrer(bench: Bench, repository: string, subject: BlobRef, label: string): Promise<PushedReferrer> {
  const empty = await pushBlob(bench, repository, Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  const layer = await pushBlob(bench, repository, Buffer.from(`signature of ${subject.digest}: ${label}\n`), 'application/vnd.example.signature.v1');
  const manifestBody = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.signature.v1', config: empty, layers: [layer], subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } }),
  );
  const manifest = { digest: sha256(manifestBody), size: manifestBody.length, mediaType: OCI_MANIFEST };
  await putManifest(bench, repository, manifest.digest, manifestBody, OCI_MANIFEST);
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...manifest, artifactType: 'application/vnd.example.signature.v1' }] }));
  await putManifest(bench, repository, `sha256-${subject.digest.slice(7)}`, index, OCI_INDEX);
  return { manifest, layer };
}

async function curlDirect(bench: Bench, args: string[]): Promise<ExecResult> {
  const result = await bench.sandbox.exec('curl', ['-sS', '--fail-with-body', '--max-time', '30', '--cacert', bench.ca.certFile, ...args], { resolvConf: bench.resolver.resolvConf });
  if (result.code !== 0) throw new Error(`curl ${args.join(' ')} failed: ${result.stderr}${result.stdout}`);
  return result;
}

async function pushBlob(bench: Bench, repository: string, bytes: Buffer, mediaType: string): Promise<BlobRef> {
  const digest = sha256(bytes);
  const file = join(bench.sandbox.dir, `blob-${digest.slice(7, 19)}`);
  writeFileSync(file, bytes);
  const started = await curlDirect(bench, ['-X', 'POST', '-D', '-', '-o', '/dev/null', `https://${DIRECT_HOST}/v2/${repository}/blobs/uploads/`]);
  const location = /^location:\s*(\S+)/im.exec(started.stdout)?.[1];
  if (!location) throw new Error(`no upload Location: ${started.stdout}`);
  const url = new URL(location, `https://${DIRECT_HOST}`);
  url.searchParams.set('digest', digest);
  await curlDirect(bench, ['-X', 'PUT', '-H', 'content-type: application/octet-stream', '--data-binary', `@${file}`, url.href]);
  return { digest, size: bytes.length, mediaType };
}

async function putManifest(bench: Bench, repository: string, reference: string, body: Buffer, mediaType: string): Promise<void> {
  const file = join(bench.sandbox.dir, `manifest-${reference.slice(0, 24).replace(/[^a-z0-9-]/g, '')}`);
  writeFileSync(file, body);
  await curlDirect(bench, ['-X', 'PUT', '-H', `content-type: ${mediaType}`, '--data-binary', `@${file}`, `https://${DIRECT_HOST}/v2/${repository}/manifests/${reference}`]);
}
