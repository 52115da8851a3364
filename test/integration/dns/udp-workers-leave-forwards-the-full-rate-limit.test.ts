/**
 * With UDP answer workers, each socket answers intercepted names with its share of the response
 * rate limit; forwarded answers, which only the main thread sends (whichever socket got the query),
 * must get the whole configured rate, not the main socket's share.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Packet } from 'dns2';
import { describe, expect, it, onTestFinished } from 'vitest';
import { QTYPE } from '../../../src/dns/wire.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { startDnsServer } from './start-dns-server.js';
import { udpBurst } from './udp-burst.js';

/** Responses a second, and so the burst one account allows; a third of it is the main socket's share beside 2 workers. */
const RATE = 30;
const CLIENTS = 64;

describe('UDP answer workers and the rate limit for forwarded names', () => {
  it('let the main thread send forwarded answers at the full configured rate', async () => {
    const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] } });
    onTestFinished(() => upstream.stop());
    const { port } = await startDnsServer({
      upstreams: [{ host: upstream.host, port: upstream.port }],
      policy: dnsPolicy({ rateLimit: RATE, rateLimitSlip: 0 }),
      udpWorkers: 2,
    });

    // One account (client /24 and question) for all: the burst of one second is RATE answers.
    const replies = await udpBurst(port, CLIENTS, (client) => query('other.test', QTYPE.A, { id: client }), RATE);
    await delay(200); // for any reply beyond the limit
    const answered = replies.filter((got) => got.length === 1);
    for (const [got] of answered) expect(Packet.parse(got!).answers.map((a) => a.address)).toEqual(['192.0.2.7']);
    // A third of the rate (the main socket's share for intercepted names) would let about 10 through.
    expect(answered.length).toBeGreaterThanOrEqual(RATE);
    expect(answered.length).toBeLessThan(CLIENTS);
  });
});
