/**
 * The clients of rolling-restart.test.ts, run by Node inside the bench's sandbox
 * (test/bench/node-script.ts): `clients` keep-alive connections (one undici Client each) to the load
 * balancer's address, by the registry's name (SNI and Host), each pulling one image after another
 * (manifest by tag, then every blob, each body hashed against its digest) until `stopFile` exists.
 * One JSON summary line on stdout. Only `node:` imports and undici: Node strips the types itself.
 *
 * Like Go's net/http (containerd, skopeo, the kubelet's pulls) and curl, a request that went out on a
 * kept-alive connection which closed before any byte of an answer came back is sent again once, on a
 * new connection: RFC 9112 9.3.1 lets a client retry an idempotent request then, because the server
 * cannot have acted on it. Anything else (a status other than 200, wrong bytes, a reset mid-answer,
 * a refused connection) is a failed pull.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Client, errors } from 'undici';

export interface PullImage {
  repository: string;
  tag: string;
  /** The manifest's digest and media type, as the registry serves it. */
  digest: string;
  mediaType: string;
  /** The platform manifests of an index, fetched by digest; none for a single manifest. */
  manifests: Array<{ digest: string; mediaType: string }>;
  blobs: Array<{ digest: string; size: number }>;
}

export interface PullJob {
  caFile: string;
  /** The load balancer: `https://127.0.0.1:443`. */
  origin: string;
  /** The registry's name, sent as SNI and Host. */
  host: string;
  clients: number;
  images: PullImage[];
  /** The run ends when this file exists (checked between pulls), or after `maxSeconds`. */
  stopFile: string;
  maxSeconds: number;
}

export interface PullSummary {
  pulls: number;
  failedPulls: number;
  requests: number;
  /** Requests sent again after their kept-alive connection closed before any answer (see above). */
  retriedOnClosedConnection: number;
  /** Connections made: a client reconnects after every `Connection: close`. */
  connects: number;
  /** Answers that carried `Connection: close` (a replica stopping). */
  closingAnswers: number;
  failureSamples: string[];
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The connection closed before an answer began: undici's SocketError with no response at all. */
const closedBeforeAnswer = (error: unknown): boolean => error instanceof errors.SocketError || (error as { code?: string }).code === 'ECONNRESET';

async function main(): Promise<void> {
  const input: Buffer[] = [];
  for await (const chunk of process.stdin) input.push(chunk as Buffer);
  const job = JSON.parse(Buffer.concat(input).toString('utf8')) as PullJob;
  const ca = readFileSync(job.caFile);
  const deadline = performance.now() + job.maxSeconds * 1000;
  const summary: PullSummary = { pulls: 0, failedPulls: 0, requests: 0, retriedOnClosedConnection: 0, connects: 0, closingAnswers: 0, failureSamples: [] };

  async function runClient(index: number): Promise<void> {
    const client = new Client(job.origin, { connect: { ca, servername: job.host }, keepAliveTimeout: 30_000, pipelining: 1 });
    client.on('connect', () => summary.connects++);
    /** Requests answered on the current connection: 0 means a fresh one (nothing to retry). */
    let answeredOnConnection = 0;
    client.on('connect', () => (answeredOnConnection = 0));

    const fetchBytes = async (path: string, accept?: string): Promise<{ status: number; headers: Record<string, unknown>; bytes: Buffer }> => {
      for (let attempt = 0; ; attempt++) {
        const reused = answeredOnConnection > 0;
        summary.requests++;
        try {
          const { statusCode, headers, body } = await client.request({ path, method: 'GET', headers: { host: job.host, ...(accept ? { accept } : {}) } });
          answeredOnConnection++;
          if (String(headers.connection).toLowerCase() === 'close') summary.closingAnswers++;
          return { status: statusCode, headers, bytes: Buffer.from(await body.arrayBuffer()) };
        } catch (error) {
          if (attempt === 0 && reused && closedBeforeAnswer(error)) {
            summary.retriedOnClosedConnection++;
            continue;
          }
          throw error;
        }
      }
    };

    try {
      let turn = index;
      while (!existsSync(job.stopFile) && performance.now() < deadline) {
        const image = job.images[turn++ % job.images.length]!;
        try {
          for (const { reference, digest, mediaType } of [{ reference: image.tag, digest: image.digest, mediaType: image.mediaType }, ...image.manifests.map((m) => ({ reference: m.digest, ...m }))]) {
            const manifest = await fetchBytes(`/v2/${image.repository}/manifests/${reference}`, mediaType);
            if (manifest.status !== 200) throw new Error(`manifest ${image.repository}:${reference}: ${manifest.status} ${manifest.bytes.toString('utf8', 0, 200)}`);
            if (sha256(manifest.bytes) !== digest) throw new Error(`manifest ${image.repository}:${reference}: wrong bytes`);
          }
          for (const blob of image.blobs) {
            const answer = await fetchBytes(`/v2/${image.repository}/blobs/${blob.digest}`);
            if (answer.status !== 200) throw new Error(`blob ${blob.digest}: ${answer.status} ${answer.bytes.toString('utf8', 0, 200)}`);
            if (answer.bytes.length !== blob.size || sha256(answer.bytes) !== blob.digest) throw new Error(`blob ${blob.digest}: wrong bytes (${answer.bytes.length})`);
          }
          summary.pulls++;
        } catch (error) {
          summary.failedPulls++;
          const message = error instanceof Error ? `${error.message}${(error as { code?: string }).code ? ` (${(error as { code?: string }).code})` : ''}` : String(error);
          if (summary.failureSamples.length < 20) summary.failureSamples.push(`client ${index}: ${message}`);
        }
      }
    } finally {
      await client.close();
    }
  }

  await Promise.all(Array.from({ length: job.clients }, (_, index) => runClient(index)));
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

await main();
