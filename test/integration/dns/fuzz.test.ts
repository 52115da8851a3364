import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { Packet } from 'dns2';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DnsServer } from '../../../src/dns/dns-server.js';
import { QTYPE } from '../../../src/dns/wire.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { query } from '../../unit/dns/packets.js';
import { captureLogger, LEVEL } from '../../helpers/capture-logger.js';
import { dig } from '../../helpers/dig.js';
import { LOOPBACK_POLICY } from '../../unit/dns/policies.js';

/** Set DNS_FUZZ_SEED to replay a failing run. */
const SEED = Number(process.env.DNS_FUZZ_SEED ?? 0x5eed);
/** DNS_FUZZ_PACKETS scales the run (UDP count; TCP gets a tenth); the default 100k takes about 4 s. */
const UDP_PACKETS = Number(process.env.DNS_FUZZ_PACKETS ?? 100_000);
const TCP_CONNECTIONS = 4;
const TCP_PACKETS_PER_CONNECTION = Math.ceil(UDP_PACKETS / 10 / TCP_CONNECTIONS);
/** Packets per client socket: each socket has its own 16-bit ID space, where a packet's ID is its index. */
const UDP_PER_SOCKET = 0x8000;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const VALID = [
  query('docker.proxy', QTYPE.A),
  query('europe-docker.pkg.dev', QTYPE.AAAA, { edns: { udpPayloadSize: 1232 } }),
  query('docker.proxy', Packet.TYPE.TXT),
  query('other.test', QTYPE.A),
  query('x.nxdomain.test', QTYPE.A, { edns: { doFlag: true } }),
  query('other.test', QTYPE.AAAA, { edns: { udpPayloadSize: 512 } }),
];

/** Random bytes, cut-offs and mutations of valid queries (not only noise: those reach deeper code). */
function fuzzPacket(random: (n: number) => number, maxLength: number): Buffer {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => random(256)));
  const base = Buffer.from(VALID[random(VALID.length)]!);
  switch (random(11)) {
    case 0:
      return bytes(random(Math.min(maxLength, 700)));
    case 1:
      return base.subarray(0, random(base.length));
    case 2:
      for (let i = 1 + random(4); i > 0; i--) base[random(base.length)] = random(256);
      return base;
    case 3:
      return Buffer.concat([base, bytes(1 + random(64))]);
    case 4:
      base.writeUInt16BE(random(0x10000), 4 + 2 * random(4));
      return base;
    case 5:
      base[2] = base[2]! | 0x80;
      return base;
    case 6:
      base[2] = (base[2]! & 0x87) | (random(16) << 3);
      return base;
    case 7: // compression pointers in the question, including one to itself
      base.writeUInt16BE(0xc000 | (12 + random(4)), 12);
      return base;
    case 8: // a label length that lies
      base[12] = random(2) ? 0x3f : 0x40 + random(0xc0);
      return base;
    case 9: // records promised after the question that are not there, or are noise
      base.writeUInt16BE(1 + random(3), 6 + 2 * random(3));
      return Buffer.concat([base, bytes(random(30))]);
    default:
      return random(8) === 0 ? bytes(maxLength) : Buffer.from('00000000ffffffffffffffff', 'hex');
  }
}

/** The server must answer neither responses nor packets too short to carry an ID. */
const mustBeSilent = (packet: Buffer) => packet.length < 12 || (packet[2]! & 0x80) !== 0;

/**
 * Without the rate limiter every answerable packet must be answered, which is what shows that
 * hostile input reaches deep code and gets a reply. With it (the default policy: 100 identical
 * responses a second per prefix, slip 2), a flood from one address is mostly not answered, by
 * design: that run checks that what does go out is well formed and that the server keeps
 * answering. It is smaller, because the sender waits a little for replies that are never sent.
 */
const RUNS = [
  { limiter: 'off', udpPackets: UDP_PACKETS, policy: LOOPBACK_POLICY },
  { limiter: 'on', udpPackets: Math.ceil(UDP_PACKETS / 20), policy: { ...LOOPBACK_POLICY, rateLimit: 100, rateLimitSlip: 2 } },
];

describe('hostile input', () => {
  it.each(RUNS)('survives fuzzed UDP and TCP packets and keeps answering, rate limiter $limiter', async ({ limiter, udpPackets, policy }) => {
    const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] }, nxdomains: ['nxdomain.test'] });
    onTestFinished(() => upstream.stop());
    const { logger, lines } = captureLogger('info');
    const dns = new DnsServer({
      listen: { host: '127.0.0.1', port: 0 },
      intercepted: new HostnameSet(['docker.proxy', '*.pkg.dev']),
      advertise: ['127.0.0.10', 'fd00::10'],
      upstreams: [{ host: upstream.host, port: upstream.port }],
      upstreamTimeoutMs: 300,
      policy,
      logger,
    });
    onTestFinished(() => dns.close());
    const { port } = await dns.listen();
    const random = prng(SEED);

    // UDP: every packet gets its index within its socket's share as ID, so replies can be traced back to it.
    const sent: Buffer[] = [];
    const replies = new Map<number, Buffer>();
    const bad: string[] = [];
    const clients: dgram.Socket[] = [];
    const udpClient = async (base: number): Promise<dgram.Socket> => {
      const client = dgram.createSocket('udp4');
      onTestFinished(() => new Promise<void>((resolve) => client.close(() => resolve())));
      client.on('message', (msg) => {
        const index = msg.length >= 2 ? base + msg.readUInt16BE(0) : -1;
        const packet = sent[index];
        if (!packet || msg.length < 12 || (msg[2]! & 0x80) === 0 || mustBeSilent(packet)) {
          bad.push(`unexpected reply ${msg.toString('hex')} to ${packet?.toString('hex')}`);
        } else {
          replies.set(index, msg);
        }
      });
      client.bind(0, '127.0.0.1');
      await once(client, 'listening');
      return client;
    };
    let answerable = 0;
    for (let i = 0; i < udpPackets; i++) {
      if (i % UDP_PER_SOCKET === 0) clients.push(await udpClient(i));
      const packet = fuzzPacket(random, 5000);
      if (packet.length >= 2) packet.writeUInt16BE(i % UDP_PER_SOCKET, 0);
      sent.push(packet);
      clients.at(-1)!.send(packet, port, '127.0.0.1');
      // Paced by the replies, so that the kernel's socket buffers do not drop what we mean to test
      // (client and server share this process's event loop).
      if (!mustBeSilent(packet)) answerable++;
      if (i % 50 === 49) {
        const deadline = performance.now() + 50;
        while (answerable - replies.size > 100 && performance.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
      }
    }

    // TCP: well-framed noise on a few connections, each ending with a valid query that must be answered.
    const tcpAnswers = await Promise.all(
      Array.from({ length: TCP_CONNECTIONS }, async (_, c) => {
        const socket = net.connect(port, '127.0.0.1');
        onTestFinished(() => void socket.destroy());
        await once(socket, 'connect');
        const frames = Array.from({ length: TCP_PACKETS_PER_CONNECTION }, () => fuzzPacket(random, 4096));
        const probe = query('docker.proxy', QTYPE.A, { id: 0xf000 + c });
        for (const frame of [...frames, probe]) socket.write(Buffer.concat([Buffer.from([frame.length >> 8, frame.length & 0xff]), frame]));
        let buffered = Buffer.alloc(0);
        for await (const chunk of socket) {
          buffered = Buffer.concat([buffered, chunk as Buffer]);
          while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
            const msg = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
            buffered = buffered.subarray(2 + msg.length);
            if (msg.readUInt16BE(0) === probe.readUInt16BE(0) && (msg[2]! & 0x80) !== 0) {
              socket.destroy();
              return Packet.parse(Buffer.from(msg));
            }
          }
        }
        return null;
      }),
    );
    for (const answer of tcpAnswers) expect(answer?.answers[0]?.address).toBe('127.0.0.10');

    // A frame announcing more than a query can hold ends the connection.
    const oversized = net.connect(port, '127.0.0.1');
    onTestFinished(() => void oversized.destroy());
    oversized.on('error', () => undefined);
    await once(oversized, 'connect');
    oversized.write(Buffer.from([0xff, 0xff, 0, 0]));
    await once(oversized, 'close');

    // Late replies to forwarded queries: wait for them to stop arriving.
    for (let last = -1; last !== replies.size; ) {
      last = replies.size;
      await new Promise((resolve) => setTimeout(resolve, 400));
    }

    expect(bad.slice(0, 5)).toEqual([]);
    if (limiter === 'off') {
      // Everything else gets a reply; the margin is for the kernel dropping datagrams under load.
      expect(replies.size).toBeGreaterThan(answerable * 0.98);
    } else {
      // One address sent thousands of packets within seconds: the limiter must have held most back.
      expect(replies.size).toBeLessThan(answerable * 0.9);
    }
    for (const [id, msg] of replies) {
      const parsed = Packet.parse(msg);
      if (parsed.errors.length > 0) bad.push(`malformed reply ${msg.toString('hex')} to ${sent[id]!.toString('hex')}`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(lines.filter((line) => line.level >= LEVEL.error)).toEqual([]);

    // Still answering, both from the hot path and by forwarding.
    expect((await dig(port, 'docker.proxy', 'A')).answers).toEqual([{ name: 'docker.proxy.', ttl: 60, type: 'A', data: '127.0.0.10' }]);
    expect((await dig(port, 'other.test', 'A', { tcp: true })).answers[0]?.data).toBe('192.0.2.7');
  });
});

describe('single hostile packets', () => {
  async function exchange(packet: Buffer, waitMs = 300): Promise<Buffer[]> {
    const { logger } = captureLogger('info');
    const dns = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, intercepted: new HostnameSet(['docker.proxy']), advertise: ['127.0.0.10'], upstreams: [], policy: LOOPBACK_POLICY, logger });
    onTestFinished(() => dns.close());
    const { port } = await dns.listen();
    const client = dgram.createSocket('udp4');
    onTestFinished(() => new Promise<void>((resolve) => client.close(() => resolve())));
    const received: Buffer[] = [];
    client.on('message', (msg) => received.push(msg));
    client.send(packet, port, '127.0.0.1');
    const deadline = performance.now() + waitMs;
    while (received.length === 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    return received;
  }

  it('never answers a response, so two servers cannot bounce errors off each other (reflection loop)', async () => {
    const response = query('docker.proxy', QTYPE.A);
    response[2] = response[2]! | 0x80;
    expect(await exchange(response)).toEqual([]);
  });

  it('drops packets shorter than a header', async () => {
    expect(await exchange(Buffer.from('abcd0100000100', 'hex'))).toEqual([]);
  });

  it('answers the 12-octet packet that stalled dns2 3.0 for seconds with a prompt FORMERR', async () => {
    const started = performance.now();
    const [reply] = await exchange(Buffer.from('00000000ffffffffffffffff', 'hex'), 1000);
    expect(performance.now() - started).toBeLessThan(500);
    expect(Packet.parse(reply!).header).toMatchObject({ qr: 1, rcode: 1 });
  });

  it('answers a compression loop in the question with FORMERR', async () => {
    const looped = Buffer.from('12340100000100000000000' + '0c00c00010001', 'hex');
    const [reply] = await exchange(looped);
    expect(Packet.parse(reply!).header).toMatchObject({ id: 0x1234, qr: 1, rcode: 1 });
  });

  it('answers opcodes other than QUERY with NOTIMP', async () => {
    const notify = query('docker.proxy', QTYPE.A);
    notify[2] = (notify[2]! & 0x87) | (4 << 3);
    const [reply] = await exchange(notify);
    expect(Packet.parse(reply!).header).toMatchObject({ qr: 1, opcode: 4, rcode: 4 });
  });
});
