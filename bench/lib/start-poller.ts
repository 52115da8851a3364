/**
 * The polls of bench/index-scale.bench-run.ts while Layover starts, in one Node process inside the
 * sandbox (run with test/bench/node-script.ts): its DNS server until it answers a name it forwards,
 * then /readyz until 200, then a cached blob over TLS until 200, each tried every 10 ms on a new
 * connection. Writes the three moments (epoch ms) as one JSON line. A bash loop starting dig and curl
 * every 10 ms took about half a core of the two that Layover's start has.
 *
 * Runs as a Node script with its types stripped: only `node:` imports, erasable TypeScript only.
 */
import { Resolver } from 'node:dns/promises';
import { type ClientRequest, type IncomingMessage, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { text } from 'node:stream/consumers';

export interface StartPollJob {
  /** Layover's DNS server (port 53). */
  dnsServer: string;
  /** A name Layover forwards: it answers it before the cache has opened. */
  forwardedName: string;
  /** http://…/readyz */
  readyUrl: string;
  /** A blob the cache holds: https://host/path, connected to `address`. */
  hit: { address: string; host: string; path: string };
  timeoutMs: number;
}

export interface StartPollReport {
  dnsAt: number;
  readyAt: number;
  hitAt: number;
}

const INTERVAL_MS = 10;

const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));

async function until(deadline: number, what: string, attempt: () => Promise<boolean>): Promise<number> {
  for (;;) {
    if (await attempt().catch(() => false)) return Date.now();
    if (Date.now() > deadline) throw new Error(`${what}: not reached in time`);
    await pause();
  }
}

/** The status of one GET on a connection of its own, its body read to the end. */
function status(send: (callback: (res: IncomingMessage) => void) => ClientRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = send((res) => {
      text(res).then(() => resolve(res.statusCode ?? 0), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function poll(job: StartPollJob): Promise<StartPollReport> {
  const deadline = Date.now() + job.timeoutMs;
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([job.dnsServer]);
  const dnsAt = await until(deadline, 'DNS', async () => (await resolver.resolve4(job.forwardedName)).length > 0);
  const ready = new URL(job.readyUrl);
  const readyAt = await until(deadline, '/readyz', async () =>
    (await status((callback) => httpRequest({ host: ready.hostname, port: ready.port, path: ready.pathname, agent: false }, callback))) === 200,
  );
  const { address, host, path } = job.hit;
  const hitAt = await until(deadline, 'the first hit', async () =>
    (await status((callback) => httpsRequest({ host: address, servername: host, headers: { host }, path, rejectUnauthorized: false, agent: false }, callback))) === 200,
  );
  return { dnsAt, readyAt, hitAt };
}

const job = JSON.parse(await text(process.stdin)) as StartPollJob;
process.stdout.write(`${JSON.stringify(await poll(job))}\n`);
