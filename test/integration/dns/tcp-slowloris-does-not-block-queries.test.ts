/**
 * DNS over TCP slowloris: connections that trickle a byte at a time, never
 * completing a query, used to hold every slot (the idle timer restarted on
 * each byte) until no real TCP query got through. Now each connection has
 * DNS_TCP_QUERY_TIMEOUT for each complete query, one address holds at most
 * DNS_TCP_MAX_PER_CLIENT connections, and a full listener closes its oldest
 * idle connection for a newcomer. Loopback addresses stand in for many clients.
 */
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { dig } from '../../helpers/dig.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { startDnsServer } from './start-dns-server.js';

const QUERY_TIMEOUT_MS = 1_000;
const MAX_PER_CLIENT = 4;
/** The listener's overall cap (not a setting). */
const MAX_CONNECTIONS = 256;
/** Far beyond the deadline, so that only a connection that is never closed fails. */
const GENEROUS_MS = QUERY_TIMEOUT_MS * 15;

async function server(tcpQueryMs = QUERY_TIMEOUT_MS): Promise<number> {
  return (await startDnsServer({ policy: dnsPolicy({ tcpQueryMs, tcpMaxPerClient: MAX_PER_CLIENT }) })).port;
}

interface Trickler {
  closed: Promise<unknown>;
  isClosed: () => boolean;
}

/** A connection from `localAddress` that announces a 200-octet query and sends it one octet every 200 ms. */
async function trickle(port: number, localAddress: string): Promise<Trickler> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  onTestFinished(() => void socket.destroy());
  // A slot that was taken back resets the connection: 'close' follows the error either way.
  let isClosed = false;
  const closed = new Promise((resolve) => socket.once('close', resolve)).then(() => (isClosed = true));
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closed]);
  socket.write(Buffer.from([0, 200]));
  const timer = setInterval(() => socket.write(Buffer.from([0x61])), 200);
  onTestFinished(() => clearInterval(timer));
  void closed.then(() => clearInterval(timer));
  return { closed, isClosed: () => isClosed };
}

const within = (ms: number) => new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms));

describe('DNS over TCP slowloris', () => {
  it('answers a real query from the same address while more than DNS_TCP_MAX_PER_CLIENT connections trickle', async () => {
    const port = await server();
    const tricklers = await Promise.all(Array.from({ length: MAX_PER_CLIENT + 6 }, () => trickle(port, '127.0.0.1')));
    const answer = await dig(port, 'docker.proxy', 'A', { tcp: true, time: 3 });
    expect(answer.answers).toEqual([{ name: 'docker.proxy.', ttl: 60, type: 'A', data: '127.0.0.10' }]);
    // Every trickling connection is closed: the extras at once for newer ones, the rest by the deadline.
    const outcome = await Promise.race([Promise.all(tricklers.map((t) => t.closed)), within(GENEROUS_MS)]);
    expect(outcome).not.toBe('timeout');
  });

  it('answers a real query while trickling connections from many addresses fill the listener', async () => {
    // A deadline far away: here only taking back idle slots can make room.
    const port = await server(60_000);
    // More than the listener holds, spread over addresses so that no one address reaches its own cap.
    const addresses = Array.from({ length: Math.ceil((MAX_CONNECTIONS + 20) / MAX_PER_CLIENT) }, (_, i) => `127.0.${2 + (i >> 8)}.${1 + (i & 0xff)}`);
    const tricklers: Trickler[] = [];
    for (const address of addresses) {
      for (let i = 0; i < MAX_PER_CLIENT; i++) tricklers.push(await trickle(port, address));
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      expect((await dig(port, 'docker.proxy', 'A', { tcp: true, time: 3 })).answers).toHaveLength(1);
    }
    // The oldest tricklers made room for the surplus and for the first real query (dig closes its
    // connection after the answer, so the next query finds that slot free).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(tricklers.filter((t) => t.isClosed()).length).toBeGreaterThanOrEqual(tricklers.length - MAX_CONNECTIONS + 1);
    expect(tricklers[0]!.isClosed()).toBe(true);
    expect(tricklers.at(-1)!.isClosed()).toBe(false);
  });
});
