/**
 * Runs inside the bench's sandbox (test/bench/node-script.ts) for bench/tls-handshake.bench-run.ts:
 * TLS handshakes against Layover, one at a time, each timed from `tls.connect` to `secureConnect`
 * (TCP connect included; it is loopback). With `resume`, one full handshake first keeps the session
 * it gets (a TLS 1.3 ticket, or a TLS 1.2 ticket) and every following handshake offers it.
 * One JSON line per handshake on stdout. Only `node:` imports: Node runs this file with its own
 * type stripping.
 */
import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';

export interface HandshakeJob {
  address: string;
  port: number;
  caFile: string;
  /** The SNI of each handshake, in order; null sends none. */
  names: (string | null)[];
  version: 'TLSv1.2' | 'TLSv1.3';
  /** Offer the session of the first handshake in every later one. */
  resume: boolean;
}

export interface HandshakeResult {
  name: string | null;
  ms: number;
  reused: boolean;
  /** The certificate verified against Layover's CA (and, with SNI, matched the name). */
  authorized: boolean;
  error?: string;
}

/** How long to wait for a TLS 1.3 ticket, which arrives after the handshake. */
const TICKET_WAIT_MS = 2_000;

interface Handshake extends HandshakeResult {
  session?: Buffer;
}

function handshake(job: HandshakeJob, ca: string, name: string | null, session: Buffer | undefined, keepSession: boolean): Promise<Handshake> {
  return new Promise((resolve) => {
    const started = performance.now();
    let result: HandshakeResult | undefined;
    let timer: NodeJS.Timeout | undefined;
    const socket: TLSSocket = connect({
      host: job.address,
      port: job.port,
      ca,
      minVersion: job.version,
      maxVersion: job.version,
      ALPNProtocols: ['http/1.1'],
      ...(name === null ? { checkServerIdentity: () => undefined } : { servername: name }),
      ...(session ? { session } : {}),
    });
    const finish = (outcome: Handshake): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    socket.once('secureConnect', () => {
      result = { name, ms: performance.now() - started, reused: socket.isSessionReused(), authorized: socket.authorized };
      if (!keepSession) return finish(result);
      timer = setTimeout(() => finish(result!), TICKET_WAIT_MS);
    });
    socket.once('session', (ticket: Buffer) => {
      if (result && keepSession) finish({ ...result, session: ticket });
      else if (keepSession) socket.once('secureConnect', () => finish({ ...result!, session: ticket }));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => finish({ ...(result ?? { name, ms: performance.now() - started, reused: false, authorized: false }), error: error.code ?? error.message }));
  });
}

async function main(): Promise<void> {
  const job = JSON.parse(readFileSync(0, 'utf8')) as HandshakeJob;
  const ca = readFileSync(job.caFile, 'utf8');
  let session: Buffer | undefined;
  for (const [index, name] of job.names.entries()) {
    const keepSession = job.resume && index === 0;
    const { session: got, ...result } = await handshake(job, ca, name, session, keepSession);
    if (keepSession) session = got;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
}

await main();
