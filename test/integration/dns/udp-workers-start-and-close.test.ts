/**
 * Starting and ending a DnsServer with UDP answer workers: a worker that fails while the others are
 * still starting is reported, not an unhandled 'error' event that ends the process; a close() that
 * comes at any step of listen() stops the start (listen() rejects) and leaves the port free.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { setImmediate as immediate, setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DnsServer } from '../../../src/dns/dns-server.js';
import { UdpAnswerWorkers } from '../../../src/dns/udp-workers.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { captureLogger, LEVEL } from '../../helpers/capture-logger.js';
import { LOOPBACK_POLICY } from '../../unit/dns/policies.js';

/** A port free for UDP and TCP on 127.0.0.1 a moment ago. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Binds `port` for UDP without SO_REUSEPORT, and for TCP: both fail while a socket of the server still holds it. */
async function bindAlone(port: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** True while some socket holds the UDP port. */
async function udpTaken(port: number): Promise<boolean> {
  const socket = dgram.createSocket('udp4');
  const taken = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(true));
    socket.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve(false));
  });
  if (!taken) await new Promise<void>((resolve) => socket.close(() => resolve()));
  return taken;
}

function server(port: number, udpWorkers: number): { dns: DnsServer; lines: ReturnType<typeof captureLogger>['lines'] } {
  const { logger, lines } = captureLogger('debug');
  const dns = new DnsServer({
    listen: { host: '127.0.0.1', port },
    intercepted: new HostnameSet(['docker.proxy']),
    advertise: ['127.0.0.10'],
    upstreams: [],
    policy: LOOPBACK_POLICY,
    logger,
    udpWorkers,
  });
  onTestFinished(() => dns.close());
  return { dns, lines };
}

describe('a DnsServer with UDP answer workers, starting and closing', () => {
  it('reports a worker that fails after it listened while another is still starting', async () => {
    const { logger, lines } = captureLogger('debug');
    const pool = await UdpAnswerWorkers.start(
      2,
      { host: '127.0.0.1', port: 0, intercepted: [], advertise: [], answerTtl: 60, rateLimit: 0, rateLimitSlip: 0, rateLimitExempt: [] },
      { onQuery: () => undefined, onCounts: () => undefined, logger },
      new URL('./fixtures/udp-worker-failing-after-listening.ts', import.meta.url),
    );
    onTestFinished(() => pool.close());
    const failed = lines.filter((line) => line.level === LEVEL.error && line.msg === 'dns udp worker failed');
    expect(failed).toHaveLength(1);
    expect(JSON.stringify(failed[0]!.err)).toContain('fixture: failed after listening');
  });

  // Without workers a start is over within a turn or two; with them it takes far longer.
  const cases: [number, string, (port: number) => Promise<unknown>][] = [
    [0, 'at once', () => Promise.resolve()],
    [2, 'at once', () => Promise.resolve()],
    [2, 'a turn later', () => immediate()],
    [2, 'a timer later', () => delay(0)],
    // The main socket is bound before the workers start, and they take far longer than a bind.
    [2, 'once the main socket is bound, while the workers start,', async (port) => {
      while (!(await udpTaken(port))) await delay(1);
    }],
  ];
  for (const [workers, name, wait] of cases) {
    it(`with ${workers} workers, a close() ${name} stops listen() and frees the port`, async () => {
      const port = await freePort();
      const { dns, lines } = server(port, workers);
      const listening = dns.listen();
      listening.catch(() => undefined);
      await wait(port);
      await dns.close();
      await expect(listening).rejects.toThrow('closed while starting');
      await bindAlone(port);
      expect(lines.filter((line) => line.msg === 'dns server listening')).toEqual([]);
    });
  }

  it('after a start that failed, listen() may be tried again', async () => {
    const port = await freePort();
    const holder = net.createServer();
    holder.listen({ port, host: '127.0.0.1' });
    await once(holder, 'listening');
    const { dns } = server(port, 0);
    await expect(dns.listen()).rejects.toThrow('EADDRINUSE');
    expect(await udpTaken(port)).toBe(false);
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    expect((await dns.listen()).port).toBe(port);
  });
});
