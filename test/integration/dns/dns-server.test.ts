import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DnsServer, type DnsServerOptions } from '../../../src/dns/dns-server.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { type Dnsmasq, freePort, startDnsmasq } from '../../helpers/dnsmasq.js';
import { captureLogger, LEVEL } from '../../helpers/capture-logger.js';
import { dig } from '../../helpers/dig.js';
import { dnsPolicy, LOOPBACK_POLICY } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { QTYPE } from '../../../src/dns/wire.js';

const INTERCEPTED = ['docker.proxy', 'registry-1.docker.io', '*.pkg.dev'];
const V4 = '127.0.0.10';
const V6 = 'fd00::10';

/** dnsmasq knows intercepted names too, with other data: seeing it in an answer means a leak. */
async function upstream(extra: string[] = []): Promise<Dnsmasq> {
  const dnsmasq = await startDnsmasq({
    hostRecords: { 'other.test': ['192.0.2.7', '2001:db8::7'], 'docker.proxy': ['192.0.2.66', '2001:db8::66'] },
    nxdomains: ['nxdomain.test'],
    args: ['--txt-record=docker.proxy,leaked', '--mx-host=docker.proxy,mail.test', ...extra],
  });
  onTestFinished(() => dnsmasq.stop());
  return dnsmasq;
}

async function server(options: Partial<DnsServerOptions> & Pick<DnsServerOptions, 'upstreams'>) {
  const { logger, lines } = captureLogger();
  const dns = new DnsServer({
    listen: { host: '127.0.0.1', port: 0 },
    intercepted: new HostnameSet(INTERCEPTED),
    advertise: [V4, V6],
    policy: LOOPBACK_POLICY,
    logger,
    ...options,
  });
  onTestFinished(() => dns.close());
  const { port } = await dns.listen();
  return { dns, port, lines };
}

const endpoint = (d: Dnsmasq) => ({ host: d.host, port: d.port });

/** A UDP socket that reads queries and never answers. */
async function blackHole(): Promise<{ host: string; port: number; received: () => number }> {
  const socket = dgram.createSocket('udp4');
  let received = 0;
  socket.on('message', () => received++);
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { host: '127.0.0.1', port: socket.address().port, received: () => received };
}

describe('intercepted names', () => {
  it('answers A and AAAA authoritatively from the advertised addresses, over UDP and TCP', async () => {
    const { port } = await server({ upstreams: [endpoint(await upstream())] });
    for (const tcp of [false, true]) {
      const a = await dig(port, 'docker.proxy', 'A', { tcp });
      expect(a.status).toBe('NOERROR');
      expect(a.flags).toEqual(expect.arrayContaining(['qr', 'aa', 'ra']));
      expect(a.answers).toEqual([{ name: 'docker.proxy.', ttl: 60, type: 'A', data: V4 }]);
      const aaaa = await dig(port, 'docker.proxy', 'AAAA', { tcp });
      expect(aaaa.answers).toEqual([{ name: 'docker.proxy.', ttl: 60, type: 'AAAA', data: V6 }]);
    }
  });

  it('matches wildcards and any case, and keeps the client spelling of the name', async () => {
    const { port } = await server({ upstreams: [], answerTtl: 5 });
    const wildcard = await dig(port, 'europe-docker.pkg.dev', 'A');
    expect(wildcard.answers).toEqual([{ name: 'europe-docker.pkg.dev.', ttl: 5, type: 'A', data: V4 }]);
    const upper = await dig(port, 'REGISTRY-1.Docker.IO.', 'AAAA', { tcp: true });
    expect(upper.answers).toEqual([{ name: 'REGISTRY-1.Docker.IO.', ttl: 5, type: 'AAAA', data: V6 }]);
    // The bare suffix of a wildcard is not intercepted: with no upstream it fails.
    expect((await dig(port, 'pkg.dev', 'A')).status).toBe('SERVFAIL');
  });

  it('answers other types with NODATA and never forwards them, so the real data cannot leak', async () => {
    const dnsmasq = await upstream();
    expect((await dig(dnsmasq.port, 'docker.proxy', 'TXT', { extra: ['@' + dnsmasq.host] })).answers).not.toEqual([]);
    const { port } = await server({ upstreams: [endpoint(dnsmasq)] });
    for (const type of ['TXT', 'MX', 'HTTPS', 'SRV']) {
      const reply = await dig(port, 'docker.proxy', type);
      expect(reply.status, type).toBe('NOERROR');
      expect(reply.flags, type).toContain('aa');
      expect(reply.answers, type).toEqual([]);
    }
    const { port: v4only } = await server({ upstreams: [endpoint(dnsmasq)], advertise: [V4] });
    const aaaa = await dig(v4only, 'docker.proxy', 'AAAA');
    expect(aaaa.status).toBe('NOERROR');
    expect(aaaa.answers).toEqual([]);
  });

  it('echoes EDNS only when the query used it', async () => {
    const { port } = await server({ upstreams: [] });
    expect((await dig(port, 'docker.proxy', 'A')).raw).toContain('OPT PSEUDOSECTION');
    const plain = await dig(port, 'docker.proxy', 'A', { extra: ['+noedns'] });
    expect(plain.raw).not.toContain('OPT PSEUDOSECTION');
    expect(plain.answers).toHaveLength(1);
  });
});

describe('forwarding', () => {
  it('relays answers of the upstream over UDP and TCP, and NXDOMAIN', async () => {
    const { port } = await server({ upstreams: [endpoint(await upstream())] });
    const a = await dig(port, 'other.test', 'A');
    expect(a.status).toBe('NOERROR');
    expect(a.answers).toEqual([{ name: 'other.test.', ttl: 300, type: 'A', data: '192.0.2.7' }]);
    const aaaa = await dig(port, 'Other.Test', 'AAAA', { tcp: true });
    expect(aaaa.answers).toEqual([{ name: 'Other.Test.', ttl: 300, type: 'AAAA', data: '2001:db8::7' }]);
    expect((await dig(port, 'x.nxdomain.test', 'A')).status).toBe('NXDOMAIN');
  });

  it('serves a second ask from cache, with the TTL counted down, after the upstream is gone', async () => {
    const dnsmasq = await upstream();
    const { port } = await server({ upstreams: [endpoint(dnsmasq)] });
    const first = await dig(port, 'other.test', 'A');
    expect(first.answers[0]?.ttl).toBe(300);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await dnsmasq.stop();
    const second = await dig(port, 'OTHER.test', 'A');
    expect(second.status).toBe('NOERROR');
    expect(second.answers).toHaveLength(1);
    expect(second.answers[0]?.data).toBe('192.0.2.7');
    expect(second.answers[0]?.ttl).toBeLessThan(300);
    expect(second.answers[0]?.ttl).toBeGreaterThan(290);
    // A question that was never asked is not in the cache.
    expect((await dig(port, 'other.test', 'AAAA', { time: 3 })).status).toBe('SERVFAIL');
  });

  it('answers SERVFAIL promptly when every upstream is down or silent', async () => {
    const closed = { host: '127.0.0.1', port: await freePort() };
    const hole = await blackHole();
    const { port, lines } = await server({ upstreams: [hole, closed, hole], upstreamTimeoutMs: 300 });
    const reply = await dig(port, 'other.test', 'A', { time: 5 });
    expect(reply.status).toBe('SERVFAIL');
    expect(reply.ms).toBeLessThan(3 * 300 + 700);
    expect(hole.received()).toBe(2);
    const warnings = lines.filter((line) => line.level === LEVEL.warn && line.msg.includes('upstream failed'));
    expect(warnings.map((line) => line.upstream).sort()).toEqual([`127.0.0.1:${closed.port}`, `127.0.0.1:${hole.port}`].sort());
    // The second failure of an upstream already known to be down is not warned about again.
    await dig(port, 'other.test', 'AAAA', { time: 5 });
    expect(lines.filter((line) => line.level === LEVEL.warn)).toHaveLength(2);
  });

  it('lets one client prefix start a quarter of the forwards at most: a flood the upstream never answers leaves room for the others', async () => {
    const hole = await blackHole();
    const { port } = await server({ upstreams: [hole], upstreamTimeoutMs: 4_000 });
    /** A socket on its own loopback address (another /24 each), sending queries and reading nothing. */
    const client = async (address: string): Promise<(name: string) => void> => {
      const socket = dgram.createSocket('udp4');
      socket.on('message', () => undefined);
      socket.bind(0, address);
      await once(socket, 'listening');
      onTestFinished(() => new Promise<void>((resolve) => socket.close(() => resolve())));
      return (name) => socket.send(query(name, QTYPE.A), port, '127.0.0.1');
    };
    const settledCount = async (): Promise<number> => {
      for (let last = -1; ; ) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        if (hole.received() === last) return last;
        last = hole.received();
      }
    };
    const flood = await client('127.0.1.2');
    for (let i = 0; i < 1_100; i += 1) flood(`name-${i}.flood.test`);
    // 1024 forwards fit at once; one prefix may start 256 of them.
    expect(await settledCount()).toBe(256);
    const other = await client('127.0.2.2');
    other('other.test');
    other('another.test');
    expect(await settledCount()).toBe(258);
  });

  it('holds no client of DNS_RATE_LIMIT_EXEMPT (a cluster DNS asking for many) to a share of the forwards', async () => {
    const hole = await blackHole();
    const { port } = await server({ upstreams: [hole], upstreamTimeoutMs: 4_000, policy: dnsPolicy({ rateLimitExempt: ['127.0.3.0/24'] }) });
    const socket = dgram.createSocket('udp4');
    socket.on('message', () => undefined);
    socket.bind(0, '127.0.3.2');
    await once(socket, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    for (let i = 0; i < 400; i += 1) socket.send(query(`name-${i}.cluster.test`, QTYPE.A), port, '127.0.0.1');
    for (let last = -1; hole.received() !== last; ) {
      last = hole.received();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(hole.received()).toBe(400);
  });

  it('fails over to the next upstream', async () => {
    const hole = await blackHole();
    const { port } = await server({ upstreams: [hole, endpoint(await upstream())], upstreamTimeoutMs: 300 });
    const reply = await dig(port, 'other.test', 'A', { tcp: false });
    expect(reply.answers[0]?.data).toBe('192.0.2.7');
    expect(hole.received()).toBe(1);
  });

  it('forwards TCP queries over TCP', async () => {
    const dnsmasq = await upstream();
    // Fixture: a TCP-only relay in front of dnsmasq (no real program listens on TCP alone),
    // so an answer proves the forward went over TCP.
    let connections = 0;
    const relay = net.createServer((client) => {
      connections++;
      const target = net.connect(dnsmasq.port, dnsmasq.host);
      client.pipe(target).pipe(client);
      client.on('error', () => target.destroy());
      target.on('error', () => client.destroy());
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => relay.close(() => resolve())));
    const { port } = await server({ upstreams: [{ host: '127.0.0.1', port: (relay.address() as net.AddressInfo).port }] });
    expect((await dig(port, 'other.test', 'A', { tcp: true })).answers[0]?.data).toBe('192.0.2.7');
    expect(connections).toBe(1);
    expect((await dig(port, 'other.test', 'AAAA')).status).toBe('SERVFAIL');
  });

  it('relays a truncated UDP answer so that the client retries over TCP', async () => {
    const long = 'x'.repeat(200);
    const { port } = await server({ upstreams: [endpoint(await upstream([`--txt-record=big.test,${long},${long},${long}`]))] });
    const udp = await dig(port, 'big.test', 'TXT', { extra: ['+noedns', '+ignore'] });
    expect(udp.flags).toContain('tc');
    expect(udp.answers).toEqual([]);
    const tcp = await dig(port, 'big.test', 'TXT', { tcp: true });
    expect(tcp.answers).toHaveLength(1);
    // A large answer cached from TCP is still cut to fit a later UDP client.
    const again = await dig(port, 'big.test', 'TXT', { extra: ['+noedns', '+ignore'] });
    expect(again.flags).toContain('tc');
  });

  it('sends no UDP reply larger than its own 1232 bytes, whatever buffer a query claims (no amplification)', async () => {
    const long = 'x'.repeat(250);
    const strings = Array.from({ length: 8 }, () => long).join(',');
    const { port } = await server({ upstreams: [endpoint(await upstream([`--txt-record=huge.test,${strings}`, `--txt-record=mid.test,${long},${long},${long}`]))] });
    // About 2 KB, cached from TCP; then asked over UDP with a 4 KiB buffer (dig's largest that it sends as given).
    expect((await dig(port, 'huge.test', 'TXT', { tcp: true })).answers).toHaveLength(1);
    const udp = await dig(port, 'huge.test', 'TXT', { extra: ['+bufsize=4096', '+ignore'] });
    expect(udp.flags).toContain('tc');
    expect(udp.answers).toEqual([]);
    // An answer within 1232 bytes still goes over UDP whole.
    const mid = await dig(port, 'mid.test', 'TXT', { extra: ['+bufsize=4096', '+ignore'] });
    expect(mid.flags).not.toContain('tc');
    expect(mid.answers).toHaveLength(1);
  });
});

describe('loops and binding', () => {
  it('drops its own address from the upstreams and does not loop', async () => {
    const port = await freePort();
    const dnsmasq = await upstream();
    const { lines } = await server({
      listen: { host: '127.0.0.1', port },
      upstreams: [{ host: '127.0.0.1', port }, { host: '::ffff:127.0.0.1', port }, endpoint(dnsmasq)],
    });
    expect(lines.filter((line) => line.msg.includes('this server itself'))).toHaveLength(2);
    const reply = await dig(port, 'other.test', 'A');
    expect(reply.answers[0]?.data).toBe('192.0.2.7');
  });

  it('ends a loop through another resolver with SERVFAIL instead of multiplying queries', async () => {
    const port = await freePort();
    // dnsmasq forwards everything it does not know back to us.
    const dnsmasq = await upstream([`--server=127.0.0.1#${port}`]);
    const { lines } = await server({ listen: { host: '127.0.0.1', port }, upstreams: [endpoint(dnsmasq)], upstreamTimeoutMs: 500 });
    const reply = await dig(port, 'loop.example', 'A', { time: 4 });
    expect(reply.status).toBe('SERVFAIL');
    // The query dnsmasq sends back joins the forward already in flight instead of starting another.
    expect(lines.filter((line) => line.msg === 'dns forwarding')).toHaveLength(1);
  });

  it('rejects listen() on a port in use instead of crashing', async () => {
    const { port } = await server({ upstreams: [] });
    const { logger } = captureLogger();
    const second = new DnsServer({ listen: { host: '127.0.0.1', port }, intercepted: new HostnameSet([]), advertise: [], upstreams: [], policy: LOOPBACK_POLICY, logger });
    onTestFinished(() => second.close());
    await expect(second.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect((await dig(port, 'docker.proxy', 'A')).answers).toHaveLength(1);
  });

  it('uses one port for UDP and TCP when asked for port 0', async () => {
    const { port } = await server({ upstreams: [] });
    expect((await dig(port, 'docker.proxy', 'A', { tcp: true })).answers).toHaveLength(1);
    expect((await dig(port, 'docker.proxy', 'A')).answers).toHaveLength(1);
  });
});
