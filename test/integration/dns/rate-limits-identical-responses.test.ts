/**
 * A flood of identical queries, the shape of a reflection attack with a forged
 * source, is answered at DNS_RATE_LIMIT responses a second per client prefix
 * (/24): beyond it every DNS_RATE_LIMIT_SLIP-th reply goes out truncated (so
 * a real client retries over TCP) and the rest are dropped. Other prefixes and
 * TCP are not affected, and the flooded prefix is answered again once the
 * flood stops.
 */
import { Packet } from 'dns2';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FLAG, QTYPE } from '../../../src/dns/wire.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { startDnsServer } from './start-dns-server.js';
import { udpClient } from './udp-client.js';

const RATE = 10;
const FLOOD = 300;

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
const full = (replies: Buffer[]) => replies.filter((r) => (r.readUInt16BE(2) & FLAG.TC) === 0);
const truncated = (replies: Buffer[]) => replies.filter((r) => (r.readUInt16BE(2) & FLAG.TC) !== 0);

describe('response-rate limiting', () => {
  it.each([
    { name: 'docker.proxy', kind: 'an intercepted' },
    { name: 'other.test', kind: 'a forwarded' },
  ])('limits a flood of identical queries for $kind name, with slips, and recovers', async ({ name }) => {
    const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] } });
    onTestFinished(() => upstream.stop());
    const { port } = await startDnsServer({
      upstreams: [{ host: upstream.host, port: upstream.port }],
      policy: dnsPolicy({ rateLimit: RATE, rateLimitSlip: 2 }),
    });

    const victim = await udpClient('127.0.0.1');
    const packet = query(name, QTYPE.A);
    for (let i = 0; i < FLOOD; i++) victim.socket.send(packet, port, '127.0.0.1');
    // A client in another /24 and a TCP client in the flooded one are answered meanwhile.
    expect((await dig(port, name, 'A', { extra: ['-b', '127.0.1.1'] })).answers).toHaveLength(1);
    expect((await dig(port, name, 'A', { tcp: true })).answers).toHaveLength(1);
    await settle();

    const answered = full(victim.replies);
    const slipped = truncated(victim.replies);
    // The burst allowance is one second's worth; the flood lasted far less than the bound here allows for.
    expect(answered.length).toBeGreaterThanOrEqual(RATE);
    expect(answered.length).toBeLessThan(FLOOD / 4);
    // Slip 2: about every other limited response is a truncated one, the rest dropped.
    const limited = FLOOD - answered.length;
    expect(slipped.length).toBeGreaterThan(limited / 4);
    expect(slipped.length).toBeLessThan(limited);
    for (const reply of slipped) {
      const parsed = Packet.parse(reply);
      expect(parsed.header).toMatchObject({ qr: 1, tc: 1, rcode: 0, ancount: 0, nscount: 0, arcount: 0 });
      expect(parsed.questions[0]?.name).toBe(name);
    }

    // Once the flood stops, the prefix is answered again (polled, within a generous bound).
    const before = victim.replies.length;
    let recovered = false;
    for (let attempt = 0; attempt < 25 && !recovered; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      victim.socket.send(packet, port, '127.0.0.1');
      await settle();
      recovered = full(victim.replies.slice(before)).length > 0;
    }
    expect(recovered).toBe(true);
  });

  it('counts junk that only earns errors as one flood, whatever the names', async () => {
    const { port } = await startDnsServer({ policy: dnsPolicy({ allowRecursion: [], rateLimit: RATE, rateLimitSlip: 0 }) });
    const stranger = await udpClient('127.0.0.1');
    for (let i = 0; i < FLOOD; i++) stranger.socket.send(query(`n${i}.example.test`, QTYPE.A), port, '127.0.0.1');
    await settle();
    // REFUSED for every one of them, but at most about a second's worth is sent; slip 0 sends no truncated ones.
    expect(stranger.replies.length).toBeGreaterThanOrEqual(RATE);
    expect(stranger.replies.length).toBeLessThan(FLOOD / 4);
    for (const reply of stranger.replies) expect(Packet.parse(reply).header).toMatchObject({ rcode: 5, tc: 0 });
  });

  it('a truncated slip to a query with EDNS keeps an OPT record (RFC 6891)', async () => {
    const { port } = await startDnsServer({ policy: dnsPolicy({ rateLimit: RATE, rateLimitSlip: 1 }) });
    const victim = await udpClient('127.0.0.1');
    const packet = query('docker.proxy', QTYPE.A, { edns: { udpPayloadSize: 1232 } });
    for (let i = 0; i < FLOOD; i++) victim.socket.send(packet, port, '127.0.0.1');
    await settle();
    const slipped = truncated(victim.replies);
    expect(slipped.length).toBeGreaterThan(0);
    for (const reply of slipped) {
      const parsed = Packet.parse(reply);
      expect(parsed.header).toMatchObject({ tc: 1, ancount: 0, arcount: 1 });
      expect(parsed.additionals[0]).toMatchObject({ type: 41 });
    }
  });

  it('counts the answers of names invented under an intercepted wildcard as one flood, and exact names apart', async () => {
    const { port } = await startDnsServer({ intercepted: new HostnameSet(['*.pkg.test', 'docker.proxy']), policy: dnsPolicy({ rateLimit: RATE, rateLimitSlip: 0 }) });
    const victim = await udpClient('127.0.0.1');
    for (let i = 0; i < FLOOD; i++) victim.socket.send(query(`n${i}.pkg.test`, QTYPE.A), port, '127.0.0.1');
    await settle();
    // Each an answer with the proxy's address, and a name of its own: counted under *.pkg.test, not a budget each.
    expect(victim.replies.length).toBeGreaterThanOrEqual(RATE);
    expect(victim.replies.length).toBeLessThan(FLOOD / 4);
    for (const reply of victim.replies) expect(Packet.parse(reply).header).toMatchObject({ rcode: 0, ancount: 1 });
    // An exact name is its own account: answered meanwhile from the flooded prefix.
    expect((await dig(port, 'docker.proxy', 'A')).answers).toHaveLength(1);
  });
});
