/**
 * Every DNS query is counted once, with its final fate: answered (an intercepted name), forwarded
 * (the upstream resolver's answer, here the real dnsmasq), refused (recursion for a stranger),
 * failed (no answer to be had, a malformed query) or limited (dropped or cut to a truncated slip by
 * the response-rate limit: the other results count only what went out whole).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FLAG, QTYPE } from '../../../src/dns/wire.js';
import { Metrics } from '../../../src/metrics/metrics.js';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { parseExposition, total } from '../../unit/metrics/exposition.js';
import { startDnsServer } from '../dns/start-dns-server.js';
import { udpClient } from '../dns/udp-client.js';

type Counted = Record<'answered' | 'forwarded' | 'refused' | 'failed' | 'limited', number>;

async function counted(metrics: Metrics): Promise<Counted> {
  const samples = parseExposition((await metrics.exposition()).body);
  const count = (result: keyof Counted): number => total(samples, 'layover_dns_queries_total', { result });
  return { answered: count('answered'), forwarded: count('forwarded'), refused: count('refused'), failed: count('failed'), limited: count('limited') };
}

describe('layover_dns_queries_total', () => {
  it('counts answers, forwards through dnsmasq, failures and malformed queries, over UDP and TCP', async () => {
    const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] } });
    onTestFinished(() => upstream.stop());
    const metrics = new Metrics();
    const { port } = await startDnsServer({ metrics, upstreams: [{ host: upstream.host, port: upstream.port }] });
    expect((await dig(port, 'docker.proxy', 'A')).answers).toHaveLength(1);
    expect((await dig(port, 'docker.proxy', 'A', { tcp: true })).answers).toHaveLength(1);
    expect((await dig(port, 'other.test', 'A')).answers).toHaveLength(1);
    // The same question again: from the forwarded-answer cache, still the upstream's answer.
    expect((await dig(port, 'other.test', 'A', { tcp: true })).answers).toHaveLength(1);
    // A query with no question: FORMERR.
    const client = await udpClient('127.0.0.1');
    const noQuestion = Buffer.from('12340100000000000000000000', 'hex').subarray(0, 12);
    client.socket.send(noQuestion, port, '127.0.0.1');
    // A response is no query: ignored, not counted.
    const response = query('docker.proxy', QTYPE.A);
    response.writeUInt16BE(response.readUInt16BE(2) | FLAG.QR, 2);
    client.socket.send(response, port, '127.0.0.1');
    for (let i = 0; i < 50 && client.replies.length < 1; i++) await delay(20);
    expect(client.replies).toHaveLength(1);
    expect(await counted(metrics)).toEqual({ answered: 2, forwarded: 2, refused: 0, failed: 1, limited: 0 });
  });

  it('counts a forward with no upstream to answer it as failed, and recursion refused to a stranger as refused', async () => {
    const failing = new Metrics();
    const { port } = await startDnsServer({ metrics: failing });
    expect((await dig(port, 'other.test', 'A')).status).toBe('SERVFAIL');
    expect(await counted(failing)).toEqual({ answered: 0, forwarded: 0, refused: 0, failed: 1, limited: 0 });

    const strict = new Metrics();
    const refusing = await startDnsServer({ metrics: strict, policy: dnsPolicy({ allowRecursion: [] }) });
    expect((await dig(refusing.port, 'other.test', 'A')).status).toBe('REFUSED');
    expect((await dig(refusing.port, 'docker.proxy', 'A')).answers).toHaveLength(1);
    expect(await counted(strict)).toEqual({ answered: 1, forwarded: 0, refused: 1, failed: 0, limited: 0 });
  });

  it('counts each query of a flood once: what went out whole as answered, the rest as limited', async () => {
    const metrics = new Metrics();
    const { port } = await startDnsServer({ metrics, policy: dnsPolicy({ rateLimit: 10, rateLimitSlip: 2 }) });
    const victim = await udpClient('127.0.0.1');
    const packet = query('docker.proxy', QTYPE.A);
    const flood = 300;
    for (let i = 0; i < flood; i++) victim.socket.send(packet, port, '127.0.0.1');
    const whole = () => victim.replies.filter((r) => (r.readUInt16BE(2) & FLAG.TC) === 0).length;
    // Until every query is counted (polled, within a generous bound).
    let result = await counted(metrics);
    for (let i = 0; i < 100 && result.answered + result.limited < flood; i++) {
      await delay(50);
      result = await counted(metrics);
    }
    expect(result.answered + result.limited).toBe(flood);
    expect(result.limited).toBeGreaterThan(0);
    // The last replies may still be on their way to the client.
    for (let i = 0; i < 100 && whole() < result.answered; i++) await delay(20);
    expect(whole()).toBe(result.answered);
  });
});
