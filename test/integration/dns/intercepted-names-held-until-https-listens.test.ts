/**
 * Layover's DNS listens before its HTTPS listener (a start loads the cache index first): until
 * answerIntercepted(), and again from holdIntercepted() at a stop, an intercepted name gets SERVFAIL,
 * on which a resolver asks its next server, instead of an address where nothing accepts yet, while
 * every other name is forwarded as usual. UDP answer workers run only while names are answered.
 */
import { Packet } from 'dns2';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DnsServer, type DnsServerOptions } from '../../../src/dns/dns-server.js';
import { QTYPE, RCODE } from '../../../src/dns/wire.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { LOOPBACK_POLICY } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { udpBurst } from './udp-burst.js';

const ADVERTISED = '127.0.0.10';
/** Enough source ports that the kernel's hash gives a second socket some: 2^-64 to miss. */
const CLIENTS = 64;

async function heldServer(options: Partial<DnsServerOptions> = {}): Promise<{ dns: DnsServer; port: number }> {
  const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'], 'docker.proxy': ['192.0.2.66'] } });
  onTestFinished(() => upstream.stop());
  const dns = new DnsServer({
    listen: { host: '127.0.0.1', port: 0 },
    intercepted: new HostnameSet(['docker.proxy', '*.mirror.test']),
    advertise: [ADVERTISED],
    upstreams: [{ host: upstream.host, port: upstream.port }],
    policy: LOOPBACK_POLICY,
    logger: captureLogger('debug').logger,
    holdIntercepted: true,
    ...options,
  });
  onTestFinished(() => dns.close());
  const { port } = await dns.listen();
  return { dns, port };
}

/** The rcode and addresses of the reply each client got to an A query for an intercepted name. */
async function burst(port: number): Promise<{ rcode: number; addresses: (string | undefined)[] }[]> {
  const replies = await udpBurst(port, CLIENTS, (client) => query(client % 2 ? 'docker.proxy' : `x${client}.mirror.test`, QTYPE.A, { id: client }), CLIENTS);
  return replies.map((got) => {
    expect(got).toHaveLength(1);
    const reply = Packet.parse(got[0]!);
    return { rcode: reply.header.rcode, addresses: reply.answers.map((a) => a.address) };
  });
}

describe('intercepted names held', () => {
  it('get SERVFAIL echoing the question while other names are forwarded, until answerIntercepted()', async () => {
    const { dns, port } = await heldServer();
    for (const tcp of [false, true]) {
      const held = await dig(port, 'docker.proxy', 'A', { tcp });
      expect(held.status, held.raw).toBe('SERVFAIL');
      expect(held.answers).toEqual([]);
      // The upstream's record for the name never leaks while it is held.
      expect(held.raw).not.toContain('192.0.2.66');
      expect(held.raw).toMatch(/;docker\.proxy\.\s+IN\s+A/);
      expect((await dig(port, 'other.test', 'A', { tcp })).answers.map((a) => a.data)).toEqual(['192.0.2.7']);
    }
    await dns.answerIntercepted();
    expect((await dig(port, 'docker.proxy', 'A')).answers.map((a) => a.data)).toEqual([ADVERTISED]);
    expect((await dig(port, 'docker.proxy', 'A', { tcp: true })).answers.map((a) => a.data)).toEqual([ADVERTISED]);

    await dns.holdIntercepted();
    expect((await dig(port, 'docker.proxy', 'A')).status).toBe('SERVFAIL');
    expect((await dig(port, 'other.test', 'A')).answers.map((a) => a.data)).toEqual(['192.0.2.7']);
  });

  it('answers at once when answerIntercepted() came before listen()', async () => {
    const dns = new DnsServer({
      listen: { host: '127.0.0.1', port: 0 },
      intercepted: new HostnameSet(['docker.proxy']),
      advertise: [ADVERTISED],
      upstreams: [],
      policy: LOOPBACK_POLICY,
      logger: captureLogger('debug').logger,
      holdIntercepted: true,
    });
    onTestFinished(() => dns.close());
    await dns.answerIntercepted();
    expect(dns.address).toBeNull();
    const { port } = await dns.listen();
    expect(dns.address).toEqual({ host: '127.0.0.1', port });
    expect((await dig(port, 'docker.proxy', 'A')).answers.map((a) => a.data)).toEqual([ADVERTISED]);
  });

  it('starts the UDP answer workers only once names are answered, and ends them at the hold', async () => {
    const { dns, port } = await heldServer({ udpWorkers: 1 });
    expect(dns.udpWorkerAnswers()).toEqual([]);
    // Every socket of the port is the main thread's: each client gets SERVFAIL.
    for (const reply of await burst(port)) expect(reply).toEqual({ rcode: RCODE.SERVFAIL, addresses: [] });

    await dns.answerIntercepted();
    for (const reply of await burst(port)) expect(reply).toEqual({ rcode: RCODE.NOERROR, addresses: [ADVERTISED] });
    const [byWorker] = dns.udpWorkerAnswers();
    expect(byWorker).toBeGreaterThan(0);
    expect(byWorker).toBeLessThan(CLIENTS);

    await dns.holdIntercepted();
    expect(dns.udpWorkerAnswers()).toEqual([]);
    // Had the worker's socket stayed, it would have answered its share of these.
    for (const reply of await burst(port)) expect(reply).toEqual({ rcode: RCODE.SERVFAIL, addresses: [] });
  });
});
