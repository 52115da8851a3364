/**
 * A cluster's DNS (CoreDNS, a node-local cache) asks for many nodes from one
 * address, so its identical questions come at a rate that looks like a flood.
 * Clients in DNS_RATE_LIMIT_EXEMPT are answered in full however often they
 * ask, as BIND's exempt-clients are; another address in the same /24 is still
 * limited, and the exempt client's answers use up none of that prefix's budget.
 */
import { describe, expect, it } from 'vitest';
import { FLAG, QTYPE } from '../../../src/dns/wire.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { startDnsServer } from './start-dns-server.js';
import { type UdpClient, udpClient } from './udp-client.js';

const RATE = 10;
const QUERIES = 300;
const BATCH = 10;

const until = async (done: () => boolean, ms: number): Promise<void> => {
  for (const deadline = Date.now() + ms; !done() && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 5));
};

/**
 * Sends `QUERIES` identical queries in batches, each once the replies to the last came in (or
 * 100 ms passed, as they do when limited): a busy cache's stream, small enough for the kernel's
 * socket buffers; then waits a while for the replies still on their way.
 */
async function ask(client: UdpClient, port: number, packet: Buffer): Promise<void> {
  for (let sent = 0; sent < QUERIES; ) {
    for (let i = 0; i < BATCH; i++) client.socket.send(packet, port, '127.0.0.1');
    sent += BATCH;
    await until(() => client.replies.length >= sent, 100);
  }
  await until(() => client.replies.length >= QUERIES, 2_000);
}

const full = (replies: Buffer[]) => replies.filter((r) => (r.readUInt16BE(2) & FLAG.TC) === 0);

describe('DNS_RATE_LIMIT_EXEMPT', () => {
  it('answers an exempt client every time, and still limits its neighbours', async () => {
    const { port } = await startDnsServer({ policy: dnsPolicy({ rateLimit: RATE, rateLimitSlip: 2, rateLimitExempt: ['127.0.0.2/32'] }) });
    const packet = query('docker.proxy', QTYPE.A);

    const cache = await udpClient('127.0.0.2');
    await ask(cache, port, packet);
    expect(full(cache.replies)).toHaveLength(QUERIES);

    // Same /24, same answer, not exempt: the limit applies as before, with the whole budget left.
    const neighbour = await udpClient('127.0.0.1');
    await ask(neighbour, port, packet);
    expect(full(neighbour.replies).length).toBeGreaterThanOrEqual(RATE);
    expect(full(neighbour.replies).length).toBeLessThan(QUERIES / 2);
  });
});
