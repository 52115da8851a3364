/**
 * With UDP answer workers the DNS port is served by several sockets (SO_REUSEPORT): the kernel
 * spreads clients over them by source address and port. Each worker answers intercepted names;
 * everything else it hands to the main thread, which answers from its own socket on the same port;
 * a malformed packet to any socket gets what the main thread gives it and harms nothing; the counts
 * reach the metrics; close() ends the workers, so the port is free again.
 */
import dgram from 'node:dgram';
import { Packet } from 'dns2';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DnsServer, type DnsServerOptions } from '../../../src/dns/dns-server.js';
import { FLAG, QTYPE, RCODE } from '../../../src/dns/wire.js';
import { Metrics } from '../../../src/metrics/metrics.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { parseExposition, total } from '../../unit/metrics/exposition.js';
import { dnsPolicy, LOOPBACK_POLICY } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { udpBurst } from './udp-burst.js';

const WORKERS = 2;
/** Enough source ports that the kernel's hash gives every socket some: (2/3)^64 per socket to miss. */
const CLIENTS = 64;

function serverOptions(): DnsServerOptions {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    intercepted: new HostnameSet(['docker.proxy', '*.mirror.test']),
    advertise: ['127.0.0.10'],
    upstreams: [],
    policy: LOOPBACK_POLICY,
    logger: captureLogger('debug').logger,
    udpWorkers: WORKERS,
  };
}

async function startServer(options: Partial<DnsServerOptions> = {}): Promise<{ dns: DnsServer; port: number }> {
  const dns = new DnsServer({ ...serverOptions(), ...options });
  onTestFinished(() => dns.close());
  const { port } = await dns.listen();
  return { dns, port };
}

/** Binds `port` without SO_REUSEPORT: fails while any socket of the server still holds it. */
async function bindAlone(port: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  onTestFinished(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
  });
}

describe('UDP answer workers', () => {
  it('answer intercepted names on every socket of the port, each worker for some of the clients', async () => {
    const { dns, port } = await startServer();
    const replies = await udpBurst(port, CLIENTS, (client) => query(client % 2 ? 'Docker.Proxy' : `x${client}.mirror.test`, QTYPE.A, { id: client }), CLIENTS);
    replies.forEach((got, client) => {
      expect(got).toHaveLength(1);
      const answer = Packet.parse(got[0]!);
      expect(answer.header.id).toBe(client);
      expect(answer.answers.map((a) => a.address)).toEqual(['127.0.0.10']);
    });
    const byWorker = dns.udpWorkerAnswers();
    expect(byWorker).toHaveLength(WORKERS);
    for (const answered of byWorker) expect(answered).toBeGreaterThan(0);
    // The main thread's socket takes its share too: the workers did not answer everything.
    expect(byWorker.reduce((sum, n) => sum + n, 0)).toBeLessThan(CLIENTS);
    expect((await dig(port, 'docker.proxy', 'A')).answers.map((a) => a.data)).toEqual(['127.0.0.10']);
  });

  it('hand names to forward to the main thread, which answers from the same port', async () => {
    const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] } });
    onTestFinished(() => upstream.stop());
    const { dns, port } = await startServer({ upstreams: [{ host: upstream.host, port: upstream.port }] });
    const replies = await udpBurst(port, CLIENTS, (client) => query('other.test', QTYPE.A, { id: client }), CLIENTS);
    replies.forEach((got, client) => {
      expect(got).toHaveLength(1);
      const answer = Packet.parse(got[0]!);
      expect(answer.header.id).toBe(client);
      expect(answer.answers.map((a) => a.address)).toEqual(['192.0.2.7']);
    });
    expect(dns.udpWorkerAnswers()).toEqual([0, 0]);
  });

  it('hand a forward for a stranger to the main thread, which refuses it', async () => {
    const { port } = await startServer({ policy: dnsPolicy({ allowRecursion: [] }) });
    const replies = await udpBurst(port, CLIENTS, (client) => query('other.test', QTYPE.A, { id: client }), CLIENTS);
    for (const got of replies) {
      expect(got).toHaveLength(1);
      expect(got[0]!.readUInt16BE(2) & 0xf).toBe(RCODE.REFUSED);
    }
  });

  it('rate-limit identical answers on every socket, and count what they held back', async () => {
    const metrics = new Metrics();
    const { dns, port } = await startServer({ metrics, policy: dnsPolicy({ rateLimit: 4, rateLimitSlip: 0 }) });
    const replies = await udpBurst(port, CLIENTS, (client) => query('docker.proxy', QTYPE.A, { id: client }), CLIENTS);
    const answered = replies.filter((got) => got.length > 0).length;
    // Each of the three sockets allows its share (2 a second, a burst of 2): far fewer than were asked,
    // however slowly the queries went out.
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(CLIENTS / 2);
    await dns.close();
    const samples = parseExposition((await metrics.exposition()).body);
    expect(total(samples, 'layover_dns_queries_total', { result: 'answered' })).toBe(answered);
    expect(total(samples, 'layover_dns_queries_total', { result: 'limited' })).toBe(CLIENTS - answered);
  });

  it('give a malformed packet on any socket what the main thread gives it, and go on answering', async () => {
    const { port } = await startServer();
    const malformed = (client: number): Buffer => {
      switch (client % 4) {
        case 0:
          return Buffer.from('1234010000000000000000', 'hex'); // shorter than a header: silence
        case 1: {
          const response = query('docker.proxy', QTYPE.A);
          response.writeUInt16BE(response.readUInt16BE(2) | FLAG.QR, 2); // a response: silence
          return response;
        }
        case 2:
          return Buffer.from('12340100000000000000000000', 'hex').subarray(0, 12); // no question: FORMERR
        default:
          return Buffer.concat([query('docker.proxy', QTYPE.A), Buffer.from([0xc0, 0x0c])]).fill(0xff, 12); // garbage: FORMERR
      }
    };
    const errors = await udpBurst(port, CLIENTS, malformed, CLIENTS / 2);
    errors.forEach((got, client) => {
      if (client % 4 < 2) expect(got).toHaveLength(0);
      else {
        expect(got).toHaveLength(1);
        expect(got[0]!.readUInt16BE(0)).toBe(0x1234);
        expect(got[0]!.readUInt16BE(2) & 0xf).toBe(RCODE.FORMERR);
      }
    });
    const answers = await udpBurst(port, CLIENTS, (client) => query('docker.proxy', QTYPE.A, { id: client }), CLIENTS);
    for (const got of answers) expect(got).toHaveLength(1);
  });

  it('count what the workers answer in layover_dns_queries_total', async () => {
    const metrics = new Metrics();
    const { dns, port } = await startServer({ metrics });
    await udpBurst(port, CLIENTS, (client) => query('docker.proxy', QTYPE.AAAA, { id: client }), CLIENTS);
    await dns.close();
    const samples = parseExposition((await metrics.exposition()).body);
    expect(total(samples, 'layover_dns_queries_total', { result: 'answered' })).toBe(CLIENTS);
  });

  it('end with close(): the port is free for a socket that does not share it', async () => {
    const { dns, port } = await startServer();
    expect((await dig(port, 'docker.proxy', 'A')).answers).toHaveLength(1);
    await dns.close();
    await bindAlone(port);
  });
});
