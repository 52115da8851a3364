/**
 * Runs the real Debian dnsmasq as an upstream resolver for tests, on a
 * 127.0.0.0/8 address and a free port, answering only from its command line:
 * no /etc/resolv.conf, no /etc/hosts, no upstream of its own.
 *
 *   const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] } });
 *   onTestFinished(() => upstream.stop());
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';

export interface DnsmasqOptions {
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** name -> addresses (IPv4 and/or IPv6), served as A/AAAA (`--host-record`). */
  hostRecords?: Record<string, string[]>;
  /** Domains (and everything below them) answered with NXDOMAIN (`--address=/d/`). */
  nxdomains?: string[];
  /** TTL of the local answers above; default 300 (dnsmasq's own default is 0). */
  ttl?: number;
  /** Further dnsmasq arguments, e.g. `--server=127.0.0.1#5353`. */
  args?: string[];
}

export interface Dnsmasq {
  readonly host: string;
  readonly port: number;
  /** dnsmasq's output so far, for assertion messages. */
  readonly log: () => string;
  /** Stops dnsmasq (SIGTERM, then SIGKILL) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 5000;

export async function startDnsmasq(options: DnsmasqOptions = {}): Promise<Dnsmasq> {
  const host = options.host ?? '127.0.0.1';
  let lastError: Error | undefined;
  // The free port is found by binding and releasing it, so another process can
  // take it in between; dnsmasq then exits at once and we try another.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(host);
    const child = spawn('dnsmasq', [...argsFor(options), `--listen-address=${host}`, `--port=${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const instance: Dnsmasq = { host, port, log: () => output, stop: () => stop(child) };
    try {
      await waitUntilAnswering(child, host, port);
      return instance;
    } catch (err) {
      await instance.stop();
      lastError = new Error(`dnsmasq did not start: ${(err as Error).message}\n${output}`, { cause: err });
    }
  }
  throw lastError ?? new Error('dnsmasq did not start');
}

/** dnsmasq answering only from its command line, in the foreground, logging to stderr. */
export function hermeticDnsmasqArgs(ttl = 300): string[] {
  return [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    // Tests run as root; dnsmasq would otherwise switch to a user that may not exist.
    '--user=root',
    '--pid-file',
    '--log-facility=-',
    `--local-ttl=${ttl}`,
  ];
}

function argsFor(options: DnsmasqOptions): string[] {
  const args = hermeticDnsmasqArgs(options.ttl);
  for (const [name, addresses] of Object.entries(options.hostRecords ?? {})) {
    args.push(`--host-record=${[name, ...addresses].join(',')}`);
  }
  for (const domain of options.nxdomains ?? []) args.push(`--address=/${domain}/`);
  return [...args, ...(options.args ?? [])];
}

/** A port free for both UDP and TCP on `host`, as a DNS server needs both. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const server = net.createServer();
    server.listen(0, host);
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const free = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, host, () => resolve(true));
    });
    if (free) udp.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (free) return port;
  }
}

/**
 * Asks `version.bind CH TXT` every 50 ms until dnsmasq replies: it answers that
 * itself, even when configured to forward everything (`--server=`).
 */
async function waitUntilAnswering(child: ChildProcess, host: string, port: number): Promise<void> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  socket.on('error', () => undefined);
  const name = Buffer.from('\x07version\x04bind\x00', 'latin1');
  const query = Buffer.concat([Buffer.from('abcd01000001000000000000', 'hex'), name, Buffer.from('00100003', 'hex')]);
  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => fail(new Error(`no answer on ${host}:${port} within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      const timer = setInterval(() => socket.send(query, port, host), 50);
      const onExit = (code: number | null): void => fail(new Error(`dnsmasq exited with ${code}`));
      const fail = (err: Error | null): void => {
        clearTimeout(deadline);
        clearInterval(timer);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      child.once('exit', onExit);
      socket.on('message', () => fail(null));
      socket.send(query, port, host);
    });
  } finally {
    socket.close();
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}
