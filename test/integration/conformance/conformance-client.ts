/**
 * The pull and discovery checks of the OCI distribution-spec conformance suite (opencontainers/
 * distribution-spec `conformance/`, both generations: the original pull/discovery specs and the 2026
 * redesign's empty and `{}` blobs, sha512, nested indexes, artifacts with a subject, large manifests),
 * ported as plain HTTP. Runs inside the bench's sandbox (test/bench/node-script.ts): pushes its own
 * content straight to the distribution registry, then sends every check to the registry directly and
 * twice through Layover (cold, then warm), and writes one JSON line per check with what each answered
 * and whether that meets the specification. Only `node:` imports: Node runs this file itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

export interface ConformanceJob {
  /** The registry itself: its address, the name its certificate carries, the test CA. */
  registry: { address: string; name: string; caFile: string };
  /** Layover: the intercepted name (resolved through Layover's DNS) and Layover's CA. */
  layover: { name: string; caFile: string };
  repository: string;
}

export interface Answer {
  status: number;
  code: string | undefined;
  contentType: string | undefined;
  digest: string | undefined;
  /** Why the answer misses the specification; absent when it meets it. */
  failure?: string;
}

export interface CheckOutcome {
  name: string;
  registry: Answer;
  cold: Answer;
  warm: Answer;
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

interface Check {
  name: string;
  method?: 'GET' | 'HEAD';
  path: string;
  headers?: Record<string, string>;
  /** Returns why the answer misses the specification, or nothing. */
  expect(answer: Raw): string | undefined;
}

type Target = { host: string; servername: string; ca: Buffer };

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';
const ACCEPT_ALL = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST].join(', ');

const sha = (bytes: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): string => `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
const header = (answer: Raw, name: string): string | undefined => [answer.headers[name]].flat()[0];
const codeOf = (body: Buffer): string | undefined => {
  try {
    return (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
};

function send(target: Target, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: target.host, port: 443, servername: target.servername, ca: target.ca, method, path, headers: { host: target.servername, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${path}: no answer within 20 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Monolithic upload: POST, then PUT with the digest (distribution-spec "pushing a blob monolithically"). */
async function pushBlob(target: Target, repository: string, bytes: Buffer, digest: string): Promise<void> {
  const started = await send(target, 'POST', `/v2/${repository}/blobs/uploads/`);
  const location = header(started, 'location');
  if (started.status !== 202 || !location) throw new Error(`upload of ${digest}: ${started.status} ${started.body.toString()}`);
  const url = new URL(location, `https://${target.servername}`);
  url.searchParams.set('digest', digest);
  const put = await send(target, 'PUT', `${url.pathname}${url.search}`, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, bytes);
  if (put.status !== 201) throw new Error(`upload of ${digest}: ${put.status} ${put.body.toString()}`);
}

async function pushManifest(target: Target, repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<void> {
  const put = await send(target, 'PUT', `/v2/${repository}/manifests/${reference}`, { 'content-type': mediaType }, bytes);
  if (put.status !== 201) throw new Error(`manifest ${reference}: ${put.status} ${put.body.toString()}`);
}

const blob = (bytes: Buffer, mediaType: string, algorithm: 'sha256' | 'sha512' = 'sha256') => ({ bytes, descriptor: { mediaType, digest: sha(bytes, algorithm), size: bytes.length } });
const manifest = (value: object) => {
  const bytes = Buffer.from(JSON.stringify(value));
  return { bytes, digest: sha(bytes) };
};

/** What the checks pull: pushed here, as the suite's setup does. */
async function pushContent(target: Target, repository: string) {
  const empty = blob(Buffer.from('{}'), EMPTY);
  const zero = blob(Buffer.alloc(0), 'application/vnd.oci.image.layer.v1.tar');
  const layer = blob(randomBytes(96 * 1024), 'application/vnd.oci.image.layer.v1.tar+gzip');
  const long = blob(randomBytes(8 * 1024), 'application/octet-stream', 'sha512');
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })), 'application/vnd.oci.image.config.v1+json');
  for (const b of [empty, zero, layer, long, config]) await pushBlob(target, repository, b.bytes, b.descriptor.digest);
  const image = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: config.descriptor, layers: [layer.descriptor, zero.descriptor] });
  const tags = ['tagtest3', 'tagtest0', 'tagtest4', 'tagtest1', 'tagtest2'];
  for (const tag of tags) await pushManifest(target, repository, tag, OCI_MANIFEST, image.bytes);
  const bare = manifest({ schemaVersion: 2, config: config.descriptor, layers: [zero.descriptor] });
  await pushManifest(target, repository, 'no-media-type', OCI_MANIFEST, bare.bytes);
  const docker = manifest({
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { ...config.descriptor, mediaType: 'application/vnd.docker.container.image.v1+json' },
    layers: [{ ...layer.descriptor, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
  });
  await pushManifest(target, repository, 'docker', DOCKER_MANIFEST, docker.bytes);
  const index = manifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length, platform: { architecture: 'amd64', os: 'linux' } }] });
  await pushManifest(target, repository, 'index', OCI_INDEX, index.bytes);
  const nested = manifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: index.digest, size: index.bytes.length }] });
  await pushManifest(target, repository, 'nested-index', OCI_INDEX, nested.bytes);
  const large = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: config.descriptor, layers: [layer.descriptor], annotations: { padding: 'x'.repeat(1024 * 1024) } });
  await pushManifest(target, repository, 'large', OCI_MANIFEST, large.bytes);
  tags.push('no-media-type', 'docker', 'index', 'nested-index', 'large');
  // An artifact with a subject (the referrers API); 2.8 predates it, so its push may fail: the checks say so.
  const artifactType = 'application/vnd.layover.conformance';
  const artifact = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType, config: empty.descriptor, layers: [empty.descriptor], subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length } });
  await pushManifest(target, repository, artifact.digest, OCI_MANIFEST, artifact.bytes).catch((error: unknown) => process.stderr.write(`artifact not pushed: ${String(error)}\n`));
  return { empty, zero, layer, long, image, bare, docker, index, nested, large, tags: tags.sort(), artifact, artifactType };
}

type Content = Awaited<ReturnType<typeof pushContent>>;

/** Each expectation: status, then the headers and body the specification asks for. */
function expecting(status: number, more: { code?: string; type?: string; digest?: string; body?: Buffer; length?: number; range?: string } = {}) {
  return (a: Raw): string | undefined => {
    if (a.status !== status) return `status ${a.status}, expected ${status}`;
    if (more.code && codeOf(a.body) !== more.code) return `code ${codeOf(a.body)}, expected ${more.code}`;
    if (!more.code && status >= 400 && status !== 404 && codeOf(a.body) === undefined) return 'no OCI error body';
    if (more.type && header(a, 'content-type') !== more.type) return `content-type ${header(a, 'content-type')}, expected ${more.type}`;
    if (more.digest && header(a, 'docker-content-digest') !== more.digest) return `docker-content-digest ${header(a, 'docker-content-digest')}, expected ${more.digest}`;
    if (more.body && !a.body.equals(more.body)) return `a body of ${a.body.length} bytes that differs from the ${more.body.length} expected`;
    if (more.length !== undefined && Number(header(a, 'content-length')) !== more.length) return `content-length ${header(a, 'content-length')}, expected ${more.length}`;
    if (more.range && header(a, 'content-range') !== more.range) return `content-range ${header(a, 'content-range')}, expected ${more.range}`;
    return undefined;
  };
}

function checks(repository: string, c: Content): Check[] {
  const r = `/v2/${repository}`;
  const missing = `sha256:${'0'.repeat(63)}1`;
  const m = (name: string, ref: string, accept: string, body: Buffer, type: string): Check[] => [
    { name: `GET manifest ${name}`, path: `${r}/manifests/${ref}`, headers: { accept }, expect: expecting(200, { type, digest: sha(body), body }) },
    { name: `HEAD manifest ${name}`, method: 'HEAD', path: `${r}/manifests/${ref}`, headers: { accept }, expect: expecting(200, { type, digest: sha(body), length: body.length }) },
  ];
  const b = (name: string, digest: string, body: Buffer): Check[] => [
    { name: `GET blob ${name}`, path: `${r}/blobs/${digest}`, expect: expecting(200, { digest, body }) },
    { name: `HEAD blob ${name}`, method: 'HEAD', path: `${r}/blobs/${digest}`, expect: expecting(200, { length: body.length }) },
  ];
  const tagList = (name: string, query: string, want: (tags: string[]) => string | undefined): Check => ({
    name: `tags list${name}${query}`,
    path: `${r}/tags/list${query}`,
    expect: (a) => expecting(200)(a) ?? want((JSON.parse(a.body.toString()) as { tags?: string[] }).tags ?? []),
  });
  const referrers = (query: string): Check => ({
    name: `referrers${query}`,
    path: `${r}/referrers/${c.image.digest}${query}`,
    expect: (a) =>
      expecting(200, { type: OCI_INDEX })(a) ??
      ((JSON.parse(a.body.toString()) as { manifests?: Array<{ digest: string; artifactType?: string }> }).manifests?.some((d) => d.digest === c.artifact.digest && d.artifactType === c.artifactType) ? undefined : 'the artifact is not listed'),
  });
  const bytes = c.layer.bytes;
  return [
    { name: 'ping /v2/', path: '/v2/', expect: expecting(200) },
    ...m('by tag', 'tagtest0', OCI_MANIFEST, c.image.bytes, OCI_MANIFEST),
    ...m('by digest', c.image.digest, OCI_MANIFEST, c.image.bytes, OCI_MANIFEST),
    ...m('without a mediaType field', 'no-media-type', OCI_MANIFEST, c.bare.bytes, OCI_MANIFEST),
    ...m('Docker schema 2', 'docker', DOCKER_MANIFEST, c.docker.bytes, DOCKER_MANIFEST),
    ...m('index by tag', 'index', ACCEPT_ALL, c.index.bytes, OCI_INDEX),
    ...m('index by digest', c.index.digest, ACCEPT_ALL, c.index.bytes, OCI_INDEX),
    ...m('nested index', 'nested-index', ACCEPT_ALL, c.nested.bytes, OCI_INDEX),
    ...m('large (1 MiB)', c.large.digest, OCI_MANIFEST, c.large.bytes, OCI_MANIFEST),
    ...m('artifact with a subject', c.artifact.digest, OCI_MANIFEST, c.artifact.bytes, OCI_MANIFEST),
    { name: 'GET manifest unknown tag', path: `${r}/manifests/no-such-tag`, headers: { accept: OCI_MANIFEST }, expect: expecting(404, { code: 'MANIFEST_UNKNOWN' }) },
    { name: 'GET manifest unknown digest', path: `${r}/manifests/${missing}`, headers: { accept: OCI_MANIFEST }, expect: expecting(404, { code: 'MANIFEST_UNKNOWN' }) },
    { name: 'HEAD manifest unknown digest', method: 'HEAD', path: `${r}/manifests/${missing}`, expect: expecting(404) },
    { name: 'GET manifest unknown repository', path: `/v2/${repository}-missing/manifests/${c.image.digest}`, headers: { accept: OCI_MANIFEST }, expect: expecting(404) },
    { name: 'GET manifest invalid reference', path: `${r}/manifests/.INVALID_MANIFEST_NAME`, expect: expecting(404) },
    ...b('layer', c.layer.descriptor.digest, bytes),
    ...b('{} (empty JSON)', c.empty.descriptor.digest, c.empty.bytes),
    ...b('of 0 bytes', c.zero.descriptor.digest, c.zero.bytes),
    ...b('by sha512', c.long.descriptor.digest, c.long.bytes).map((check) => ({ ...check, expect: expecting(200, check.method === 'HEAD' ? { length: c.long.bytes.length } : { body: c.long.bytes }) })),
    { name: 'GET blob by sha512 names its sha512 digest', path: `${r}/blobs/${c.long.descriptor.digest}`, expect: expecting(200, { digest: c.long.descriptor.digest }) },
    { name: 'GET blob Range 0-99', path: `${r}/blobs/${c.layer.descriptor.digest}`, headers: { range: 'bytes=0-99' }, expect: expecting(206, { body: bytes.subarray(0, 100), range: `bytes 0-99/${bytes.length}` }) },
    { name: 'GET blob Range 1000-', path: `${r}/blobs/${c.layer.descriptor.digest}`, headers: { range: 'bytes=1000-' }, expect: expecting(206, { body: bytes.subarray(1000), range: `bytes 1000-${bytes.length - 1}/${bytes.length}` }) },
    { name: 'GET blob Range suffix -50', path: `${r}/blobs/${c.layer.descriptor.digest}`, headers: { range: 'bytes=-50' }, expect: expecting(206, { body: bytes.subarray(bytes.length - 50) }) },
    { name: 'GET blob unknown', path: `${r}/blobs/${missing}`, expect: expecting(404, { code: 'BLOB_UNKNOWN' }) },
    { name: 'HEAD blob unknown', method: 'HEAD', path: `${r}/blobs/${missing}`, expect: expecting(404) },
    { name: 'GET blob unknown repository', path: `/v2/${repository}-missing/blobs/${missing}`, expect: expecting(404) },
    { name: 'GET blob malformed digest', path: `${r}/blobs/sha256:abc`, expect: expecting(400, { code: 'DIGEST_INVALID' }) },
    tagList('', '', (tags) => (c.tags.every((t) => tags.includes(t)) ? undefined : `tags ${tags.join(',')}`)),
    tagList(' in lexical order', '', (tags) => (tags.join() === [...tags].sort().join() ? undefined : 'not in lexical order')),
    tagList('', '?n=2', (tags) => (tags.join() === c.tags.slice(0, 2).join() ? undefined : `n=2 gave ${tags.join(',')}`)),
    tagList('', '?n=2&last=tagtest0', (tags) => (tags.join() === c.tags.filter((t) => t > 'tagtest0').slice(0, 2).join() ? undefined : `gave ${tags.join(',')}`)),
    { name: 'tags list unknown repository', path: `/v2/${repository}-missing/tags/list`, expect: expecting(404, { code: 'NAME_UNKNOWN' }) },
    referrers(''),
    referrers(`?artifactType=${encodeURIComponent(c.artifactType)}`),
  ];
}

async function main(): Promise<void> {
  const job = JSON.parse(readFileSync(0, 'utf8')) as ConformanceJob;
  const registry: Target = { host: job.registry.address, servername: job.registry.name, ca: readFileSync(job.registry.caFile) };
  const layover: Target = { host: job.layover.name, servername: job.layover.name, ca: readFileSync(job.layover.caFile) };
  const content = await pushContent(registry, job.repository);
  const answer = async (target: Target, check: Check): Promise<Answer> => {
    const raw = await send(target, check.method ?? 'GET', check.path, check.headers);
    const failure = check.expect(raw);
    return { status: raw.status, code: codeOf(raw.body), contentType: header(raw, 'content-type'), digest: header(raw, 'docker-content-digest'), ...(failure ? { failure } : {}) };
  };
  for (const check of checks(job.repository, content)) {
    const outcome: CheckOutcome = { name: check.name, registry: await answer(registry, check), cold: await answer(layover, check), warm: await answer(layover, check) };
    process.stdout.write(`${JSON.stringify(outcome)}\n`);
  }
}

await main();
