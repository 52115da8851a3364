/**
 * The load of bench/load-memory.bench-run.ts: CONCURRENCY pulls at once against one registry, for
 * `seconds`, in its own process (run with test/bench/node-script.ts inside the sandbox, so the vitest
 * process that samples the server's memory does not share its event loop with the load). A pull is
 * what a client does: the manifest by tag, the manifest by digest, then every blob, each checked
 * for status 200 and its size. Most pulls take a random image of the hot set (cache hits once warm);
 * every `missEveryMs` one worker pulls the next image of the cold set instead (cache misses of new
 * blobs). Keep-alive connections, one pool of `concurrency` sockets, TLS verified against `caFile`.
 * Writes one JSON line at the end: counts, bytes and the first errors.
 *
 * Runs as a Node script with its types stripped: only `node:` imports, erasable TypeScript only.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { text } from 'node:stream/consumers';

interface Blob {
  digest: string;
  size: number;
}

export interface LoadImage {
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  manifestSize: number;
  blobs: Blob[];
}

export interface LoadJob {
  host: string;
  address: string;
  caFile: string;
  seconds: number;
  concurrency: number;
  missEveryMs: number;
  hot: LoadImage[];
  cold: LoadImage[];
}

export interface LoadReport {
  pulls: number;
  misses: number;
  requests: number;
  bytes: number;
  errors: number;
  firstErrors: string[];
}

async function main(): Promise<void> {
  const job = JSON.parse(await text(process.stdin)) as LoadJob;
  const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency, ca: readFileSync(job.caFile) });
  const report: LoadReport = { pulls: 0, misses: 0, requests: 0, bytes: 0, errors: 0, firstErrors: [] };
  const fail = (message: string): void => {
    report.errors++;
    if (report.firstErrors.length < 10) report.firstErrors.push(message);
  };

  const get = (path: string, expectBytes: number, accept?: string): Promise<void> =>
    new Promise<void>((resolve) => {
      report.requests++;
      const req = request(
        { host: job.address, servername: job.host, port: 443, path, agent, headers: { host: job.host, ...(accept ? { accept } : {}) } },
        (res) => {
          let received = 0;
          res.on('data', (chunk: Buffer) => (received += chunk.length));
          res.on('end', () => {
            report.bytes += received;
            if (res.statusCode !== 200 || received !== expectBytes) fail(`GET ${path}: ${res.statusCode}, ${received} bytes (expected 200 and ${expectBytes})`);
            resolve();
          });
          res.on('error', (error) => {
            fail(`GET ${path}: ${error.message}`);
            resolve();
          });
        },
      );
      req.on('error', (error) => {
        // A reused connection that the server had closed: Go clients retry such a request, so the name matters.
        fail(`GET ${path}: ${error.message}${req.reusedSocket ? ' (on a reused keep-alive connection)' : ''}`);
        resolve();
      });
      req.end();
    });

  const pull = async (image: LoadImage): Promise<void> => {
    const base = `/v2/${image.repository}`;
    await get(`${base}/manifests/${image.tag}`, image.manifestSize, image.mediaType);
    await get(`${base}/manifests/${image.digest}`, image.manifestSize, image.mediaType);
    for (const blob of image.blobs) await get(`${base}/blobs/${blob.digest}`, blob.size);
    report.pulls++;
  };

  const started = Date.now();
  const deadline = started + job.seconds * 1000;
  let nextCold = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < deadline) {
      const missDue = nextCold < job.cold.length && Date.now() - started >= nextCold * job.missEveryMs;
      if (missDue) {
        report.misses++;
        await pull(job.cold[nextCold++]!);
      } else {
        await pull(job.hot[Math.floor(Math.random() * job.hot.length)]!);
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, worker));
  agent.destroy();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`load-client: ${String(error)}\n`);
  process.exit(1);
});
