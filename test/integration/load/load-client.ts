/**
 * The load generator of load.test.ts, run by Node inside the bench's sandbox (test/bench/node-script.ts):
 * `clients` keep-alive connections (one undici Client each) to Layover by its hijacked name, resolved
 * through Layover's DNS, each sending one request after another for `seconds`. Every body is checked:
 * blobs and manifests hashed against their digests, Range answers compared byte for byte, HEADs by
 * length. Misses come from the fresh images, released one after another over the run so that misses
 * last the whole run and several clients ask for the newest digest at once (single-flight). One JSON
 * summary line on stdout. Only `node:` imports and undici: Node runs this file with its own type stripping.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'undici';

export interface LoadBlob {
  repository: string;
  digest: string;
  size: number;
}

export interface LoadManifest {
  repository: string;
  /** A tag or the digest. */
  reference: string;
  digest: string;
  mediaType: string;
}

export interface LoadJob {
  caFile: string;
  host: string;
  clients: number;
  seconds: number;
  accept: string;
  cached: { blobs: LoadBlob[]; manifests: LoadManifest[]; large: LoadBlob };
  /** Images nobody asked for yet, in release order; `blobsDir` holds their bytes. None: no misses in the mix. */
  uncached: Array<{ manifest: LoadManifest; blobs: LoadBlob[]; blobsDir: string }>;
}

export interface OpStats {
  count: number;
  bytes: number;
  p50: number;
  p99: number;
}

export interface LoadSummary {
  clients: number;
  seconds: number;
  requests: number;
  bytes: number;
  latencyMs: { p50: number; p99: number; max: number };
  ops: Record<string, OpStats>;
  statuses: Record<string, number>;
  /** Bodies that did not match their digest or their range. */
  wrongBytes: number;
  serverErrors: number;
  /** Everything that was not the expected answer, network errors included. */
  failures: number;
  failureSamples: string[];
  /** Uncached blob digests requested (released) during the run. */
  missDigests: string[];
  /** The most requests in flight at once for one uncached digest. */
  sameDigestMaxInFlight: number;
  /** Connections made (a client reconnects when Layover closes its connection). */
  connects: number;
  /** Responses that closed their connection (`Connection: close`), by request kind. */
  closedBy: Record<string, number>;
}

type Op = 'blob' | 'range' | 'head' | 'manifest' | 'large' | 'large-range' | 'miss-blob' | 'miss-range' | 'miss-manifest';

/** Relative weights of the request kinds: about 70% hits, 30% misses (while misses are left). */
const WEIGHTS: Array<[Op, number]> = [
  ['blob', 36],
  ['range', 10],
  ['head', 4],
  ['manifest', 14],
  ['large', 0.3],
  ['large-range', 3],
  ['miss-blob', 21],
  ['miss-range', 6],
  ['miss-manifest', 5.7],
];

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const percentile = (sorted: number[], p: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

/** A wrong answer; `wrongBytes` when the body did not match its digest or its range. */
class Failure extends Error {
  readonly wrongBytes: boolean;

  constructor(message: string, wrongBytes = false) {
    super(message);
    this.wrongBytes = wrongBytes;
  }
}

async function main(): Promise<void> {
  const input: Buffer[] = [];
  for await (const chunk of process.stdin) input.push(chunk as Buffer);
  const job = JSON.parse(Buffer.concat(input).toString('utf8')) as LoadJob;
  const ca = await readFile(job.caFile);
  let connects = 0;
  const newClient = (): Client => {
    const client = new Client(`https://${job.host}`, { connect: { ca, servername: job.host }, keepAliveTimeout: 60_000, pipelining: 1 });
    client.on('connect', () => connects++);
    return client;
  };

  // The expected bytes of every cached blob, from one checked GET each (the warm-up's are the first fills).
  const known = new Map<string, Buffer>();
  const setup = newClient();
  for (const blob of [...job.cached.blobs, job.cached.large]) {
    const { statusCode, body } = await setup.request({ path: `/v2/${blob.repository}/blobs/${blob.digest}`, method: 'GET' });
    const bytes = Buffer.from(await body.arrayBuffer());
    if (statusCode !== 200 || sha256(bytes) !== blob.digest) throw new Error(`setup: ${blob.digest}: ${statusCode}`);
    known.set(blob.digest, bytes);
  }
  await setup.close();

  const uncachedBlobs = job.uncached.flatMap((image) => image.blobs.map((blob) => ({ ...blob, blobsDir: image.blobsDir })));
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  /** Misses are released evenly over the run: the k-th one from k/N of the time on. */
  const released = (count: number): number => Math.min(count, 1 + Math.floor(((performance.now() - started) / (job.seconds * 1000)) * count));
  /** The newest released item mostly, else one of the few before it: several clients share each new digest. */
  const fresh = <T>(items: readonly T[]): T => {
    const newest = released(items.length) - 1;
    return items[Math.random() < 0.7 ? newest : Math.max(0, newest - Math.floor(Math.random() * 6))]!;
  };

  const weights = WEIGHTS.filter(([op]) => job.uncached.length > 0 || !op.startsWith('miss'));
  const total = weights.reduce((sum, [, w]) => sum + w, 0);
  const chooseOp = (): Op => {
    let r = Math.random() * total;
    for (const [op, w] of weights) if ((r -= w) < 0) return op;
    return 'blob';
  };

  const latencies: number[] = [];
  const perOp = new Map<Op, { count: number; bytes: number; ms: number[] }>();
  const statuses: Record<string, number> = {};
  const closedBy: Record<string, number> = {};
  const noteClose = (op: Op, headers: Record<string, string | string[] | undefined>): void => {
    if (String(headers.connection).toLowerCase() === 'close') closedBy[op] = (closedBy[op] ?? 0) + 1;
  };
  const failureSamples: string[] = [];
  const missDigests = new Set<string>();
  const inFlight = new Map<string, number>();
  let failures = 0;
  let wrongBytes = 0;
  let sameDigestMaxInFlight = 0;
  let bytesTotal = 0;

  const range = (size: number, maxLength: number): [number, number] => {
    const start = Math.floor(Math.random() * size);
    return [start, Math.min(size - 1, start + Math.floor(Math.random() * maxLength))];
  };
  const fileSlice = async (path: string, start: number, end: number): Promise<Buffer> => {
    const file = await open(path);
    try {
      const out = Buffer.alloc(end - start + 1);
      await file.read(out, 0, out.length, start);
      return out;
    } finally {
      await file.close();
    }
  };

  async function once(client: Client, op: Op): Promise<number> {
    let blob: LoadBlob & { blobsDir?: string };
    let manifest: LoadManifest;
    let rangeHeader: [number, number] | undefined;
    let method: 'GET' | 'HEAD' = 'GET';
    switch (op) {
      case 'blob':
      case 'range':
        blob = pick(job.cached.blobs);
        if (op === 'range') rangeHeader = range(blob.size, 4096);
        break;
      case 'head':
        blob = pick(job.cached.blobs);
        method = 'HEAD';
        break;
      case 'large':
      case 'large-range':
        blob = job.cached.large;
        if (op === 'large-range') rangeHeader = range(blob.size, 1024 * 1024);
        break;
      case 'miss-blob':
      case 'miss-range':
        blob = fresh(uncachedBlobs);
        if (op === 'miss-range') rangeHeader = range(blob.size, 64 * 1024);
        missDigests.add(blob.digest);
        break;
      case 'manifest':
      case 'miss-manifest':
        manifest = op === 'manifest' ? pick(job.cached.manifests) : fresh(job.uncached).manifest;
        if (op === 'miss-manifest' && Math.random() < 0.5) manifest = { ...manifest, reference: manifest.digest };
        return getManifest(client, manifest, op);
    }
    const path = `/v2/${blob.repository}/blobs/${blob.digest}`;
    const headers: Record<string, string> = rangeHeader ? { range: `bytes=${rangeHeader[0]}-${rangeHeader[1]}` } : {};
    const flight = (inFlight.get(blob.digest) ?? 0) + 1;
    inFlight.set(blob.digest, flight);
    if (op.startsWith('miss')) sameDigestMaxInFlight = Math.max(sameDigestMaxInFlight, flight);
    try {
      const { statusCode, headers: h, body } = await client.request({ path, method, headers });
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      noteClose(op, h);
      if (method === 'HEAD') {
        await body.dump();
        if (statusCode !== 200 || Number(h['content-length']) !== blob.size) throw new Failure(`HEAD ${path}: ${statusCode} length ${String(h['content-length'])}`);
        return 0;
      }
      if (rangeHeader) {
        const bytes = Buffer.from(await body.arrayBuffer());
        const [start, end] = rangeHeader;
        if (statusCode !== 206) throw new Failure(`GET ${path} ${headers.range}: ${statusCode}`);
        if (h['content-range'] !== `bytes ${start}-${end}/${blob.size}`) throw new Failure(`GET ${path} ${headers.range}: content-range ${String(h['content-range'])}`);
        const cached = known.get(blob.digest);
        const expected = cached ? cached.subarray(start, end + 1) : await fileSlice(join(blob.blobsDir!, blob.digest.slice(7)), start, end);
        if (!bytes.equals(expected)) throw new Failure(`GET ${path} ${headers.range}: wrong bytes`, true);
        return bytes.length;
      }
      const hash = createHash('sha256');
      let length = 0;
      for await (const chunk of body) {
        hash.update(chunk as Buffer);
        length += (chunk as Buffer).length;
      }
      if (statusCode !== 200) throw new Failure(`GET ${path}: ${statusCode}`);
      if (`sha256:${hash.digest('hex')}` !== blob.digest || length !== blob.size) throw new Failure(`GET ${path}: wrong bytes (${length} bytes)`, true);
      if (h['docker-content-digest'] !== blob.digest) throw new Failure(`GET ${path}: docker-content-digest ${String(h['docker-content-digest'])}`);
      return length;
    } finally {
      inFlight.set(blob.digest, inFlight.get(blob.digest)! - 1);
    }
  }

  async function getManifest(client: Client, manifest: LoadManifest, op: Op): Promise<number> {
    const path = `/v2/${manifest.repository}/manifests/${manifest.reference}`;
    const { statusCode, headers, body } = await client.request({ path, method: 'GET', headers: { accept: job.accept } });
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
    noteClose(op, headers);
    const bytes = Buffer.from(await body.arrayBuffer());
    if (statusCode !== 200) throw new Failure(`GET ${path}: ${statusCode} ${bytes.toString('utf8', 0, 200)}`);
    if (sha256(bytes) !== manifest.digest) throw new Failure(`GET ${path}: wrong bytes`, true);
    if (headers['content-type'] !== manifest.mediaType) throw new Failure(`GET ${path}: content-type ${String(headers['content-type'])}`);
    return bytes.length;
  }

  async function runClient(): Promise<void> {
    const client = newClient();
    try {
      while (performance.now() < deadline) {
        const op = chooseOp();
        const t0 = performance.now();
        try {
          const bytes = await once(client, op);
          const ms = performance.now() - t0;
          latencies.push(ms);
          const stats = perOp.get(op) ?? { count: 0, bytes: 0, ms: [] };
          stats.count += 1;
          stats.bytes += bytes;
          stats.ms.push(ms);
          perOp.set(op, stats);
          bytesTotal += bytes;
        } catch (error) {
          failures += 1;
          if (error instanceof Failure && error.wrongBytes) wrongBytes += 1;
          const message = error instanceof Error ? `${op}: ${error.message}${error.cause ? ` (${String(error.cause)})` : ''}` : String(error);
          if (failureSamples.length < 20) failureSamples.push(message);
        }
      }
    } finally {
      await client.close();
    }
  }

  await Promise.all(Array.from({ length: job.clients }, runClient));
  latencies.sort((a, b) => a - b);
  const round = (n: number): number => Math.round(n * 10) / 10;
  const ops: Record<string, OpStats> = {};
  for (const [op, stats] of perOp) {
    stats.ms.sort((a, b) => a - b);
    ops[op] = { count: stats.count, bytes: stats.bytes, p50: round(percentile(stats.ms, 50)), p99: round(percentile(stats.ms, 99)) };
  }
  const summary: LoadSummary = {
    clients: job.clients,
    seconds: round((performance.now() - started) / 1000),
    requests: latencies.length + failures,
    bytes: bytesTotal,
    latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? 0) },
    ops,
    statuses,
    wrongBytes,
    serverErrors: Object.entries(statuses).reduce((sum, [status, n]) => sum + (Number(status) >= 500 ? n : 0), 0),
    failures,
    failureSamples,
    missDigests: [...missDigests],
    sameDigestMaxInFlight,
    connects,
    closedBy,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

await main();
