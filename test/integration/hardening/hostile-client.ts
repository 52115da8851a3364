/**
 * Runs inside the bench's sandbox (test/bench/node-script.ts): sends each hostile probe of the job
 * on stdin to Layover by its hijacked name (resolved through Layover's DNS), records what came
 * back, and after each probe checks that Layover still serves: a cached blob over HTTPS, hashed
 * against its digest, and an A query over UDP. One JSON line per probe on stdout.
 * Only `node:` imports: Node runs this file with its own type stripping.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface HostileProbe {
  name: string;
  transport: 'tls' | 'tcp' | 'udp';
  /** Name or address to connect to; default the job's host (resolved through Layover's DNS). */
  host?: string;
  port: number;
  /** TLS only; default the host. */
  servername?: string;
  /** Bytes to send, as latin1 text ... */
  payload?: string;
  /** ... or as hex ... */
  hex?: string;
  /** ... or a hand-made TLS 1.2 ClientHello whose server_name is these bytes (hex). */
  clientHelloSni?: string;
  /** How long to wait for the server to answer and hang up; default 3 s (UDP: 400 ms). */
  waitMs?: number;
}

export interface HostileJob {
  caFile: string;
  host: string;
  /** A cached blob: its path on `host` and its digest. */
  control: { path: string; digest: string };
  /** Where Layover's DNS listens, for the control query. */
  dns: { address: string; port: number };
  /** The A record `host` must resolve to. */
  expectAddress: string;
  probes: HostileProbe[];
}

export interface ProbeOutcome {
  name: string;
  /** Everything the server sent (latin1; for UDP, every datagram concatenated). */
  text: string;
  /** UDP: how many datagrams came back. */
  replies: number;
  /** The server closed the connection (TCP/TLS) before waitMs. */
  closed: boolean;
  /** Connecting or the TLS handshake failed (the server refused the handshake). */
  error?: string;
  ms: number;
  control: { blob: boolean; dns: boolean; detail: string };
}

const ca = (job: HostileJob): Buffer => readFileSync(job.caFile);

function payloadOf(probe: HostileProbe): Buffer {
  if (probe.clientHelloSni !== undefined) return clientHello(Buffer.from(probe.clientHelloSni, 'hex'));
  if (probe.hex !== undefined) return Buffer.from(probe.hex, 'hex');
  return Buffer.from(probe.payload ?? '', 'latin1');
}

function streamProbe(job: HostileJob, probe: HostileProbe): Promise<Omit<ProbeOutcome, 'control' | 'name'>> {
  return new Promise((resolve) => {
    const started = performance.now();
    const host = probe.host ?? job.host;
    const bytes = payloadOf(probe);
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let finished = false;
    const socket: Socket =
      probe.transport === 'tls'
        ? tlsConnect({ host, port: probe.port, servername: probe.servername ?? host, ca: ca(job) }, () => socket.write(bytes))
        : netConnect(probe.port, host, () => socket.write(bytes));
    const done = (closed: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, replies: 0, closed, ms: Math.round(performance.now() - started), ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => done(false), probe.waitMs ?? 3000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => done(true));
  });
}

function udpProbe(job: HostileJob, probe: HostileProbe): Promise<Omit<ProbeOutcome, 'control' | 'name'>> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = createSocket('udp4');
    const replies: Buffer[] = [];
    socket.on('message', (message: Buffer) => replies.push(message));
    socket.on('error', () => undefined);
    socket.send(payloadOf(probe), probe.port, probe.host ?? job.dns.address);
    setTimeout(() => {
      socket.close();
      resolve({ text: Buffer.concat(replies).toString('latin1'), replies: replies.length, closed: false, ms: Math.round(performance.now() - started) });
    }, probe.waitMs ?? 400);
  });
}

/** GET the cached blob on a new connection and hash it. */
function controlBlob(job: HostileJob): Promise<string | null> {
  return new Promise((resolve) => {
    const req = httpsGet({ host: job.host, port: 443, path: job.control.path, ca: ca(job), agent: false, timeout: 5000 }, (res) => {
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => hash.update(chunk));
      res.on('end', () => {
        const digest = `sha256:${hash.digest('hex')}`;
        resolve(res.statusCode === 200 && digest === job.control.digest ? null : `blob: ${res.statusCode} ${digest}`);
      });
      res.on('error', (err) => resolve(`blob: ${err.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`blob: ${err.message}`));
  });
}

/** An A query for the job's host over UDP; the answer must be the expected address. */
function controlDns(job: HostileJob): Promise<string | null> {
  return new Promise((resolve) => {
    const id = randomBytes(2);
    const name = Buffer.concat([...job.host.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)])), Buffer.from([0])]);
    const query = Buffer.concat([id, Buffer.from([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1])]);
    const socket = createSocket('udp4');
    const timer = setTimeout(() => finish('dns: no answer within 2 s'), 2000);
    const finish = (problem: string | null): void => {
      clearTimeout(timer);
      socket.close();
      resolve(problem);
    };
    socket.on('error', (err) => finish(`dns: ${err.message}`));
    socket.on('message', (reply: Buffer) => {
      if (!reply.subarray(0, 2).equals(id)) return;
      const rcode = reply[3]! & 0x0f;
      const answers = reply.readUInt16BE(6);
      // The answer after the echoed question: name pointer (2), type, class, ttl, rdlength, then the address.
      const at = 12 + name.length + 4 + 2 + 2 + 2 + 4 + 2;
      const address = reply.length >= at + 4 ? [...reply.subarray(at, at + 4)].join('.') : '';
      finish(rcode === 0 && answers >= 1 && address === job.expectAddress ? null : `dns: rcode ${rcode}, ${answers} answers, ${address}`);
    });
    socket.send(query, job.dns.port, job.dns.address);
  });
}

/**
 * A minimal TLS 1.2 ClientHello carrying `serverName` verbatim: Node's client refuses to send names
 * over 255 bytes or with NUL, so malformed SNI must be written by hand (as in test/integration/tls).
 */
function clientHello(serverName: Buffer): Buffer {
  const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
  const vec16 = (body: Buffer): Buffer => Buffer.concat([u16(body.length), body]);
  const extension = (type: number, body: Buffer): Buffer => Buffer.concat([u16(type), vec16(body)]);
  const extensions = Buffer.concat([
    extension(0x0000, vec16(Buffer.concat([Buffer.from([0]), vec16(serverName)]))),
    extension(0x000a, vec16(Buffer.from([0x00, 0x1d, 0x00, 0x17]))),
    extension(0x000b, Buffer.from([1, 0])),
    extension(0x000d, vec16(Buffer.from([0x08, 0x04, 0x04, 0x01, 0x04, 0x03]))),
  ]);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    randomBytes(32),
    Buffer.from([0]),
    vec16(Buffer.from([0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30])),
    Buffer.from([1, 0]),
    vec16(extensions),
  ]);
  const message = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), vec16(message)]);
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8')) as HostileJob;
  for (const probe of job.probes) {
    const outcome = probe.transport === 'udp' ? await udpProbe(job, probe) : await streamProbe(job, probe);
    const [blob, dns] = await Promise.all([controlBlob(job), controlDns(job)]);
    const control = { blob: blob === null, dns: dns === null, detail: [blob, dns].filter(Boolean).join('; ') };
    const line: ProbeOutcome = { name: probe.name, ...outcome, control };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
}

await main();
