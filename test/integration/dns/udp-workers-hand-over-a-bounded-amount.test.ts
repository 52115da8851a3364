/**
 * A UDP answer worker hands what it does not answer itself (names to forward, malformed packets) to
 * the main thread. While the main thread is busy, a flood of such packets must not queue up in
 * memory without bound: beyond about a socket buffer's worth in flight the worker drops them, as the
 * kernel does for a full socket buffer, and counts them (layover_dns_queries_total, result failed).
 * Once the main thread has caught up, hand-overs go through again.
 *
 * The flood comes from a thread of its own while this thread, the DnsServer's main thread, is held
 * in Atomics.wait: the workers go on reading their sockets meanwhile.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HANDOVER_LIMIT_BYTES } from '../../../src/dns/udp-workers.js';
import { QTYPE, RCODE } from '../../../src/dns/wire.js';
import { Metrics } from '../../../src/metrics/metrics.js';
import { parseExposition, total } from '../../unit/metrics/exposition.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { query } from '../../unit/dns/packets.js';
import { startDnsServer } from './start-dns-server.js';
import { udpBurst } from './udp-burst.js';

const WORKERS = 2;
const FLOOD_PORTS = 64;
/** A name of about 250 octets to forward: a query of about 270 bytes. */
const LONG_NAME = `${Array.from({ length: 4 }, (_, i) => `${String(i)}`.padEnd(60, 'x')).join('.')}.test`;
/** Several times what both workers may have in flight, whichever sockets the kernel picks. */
const FLOOD_PACKETS = Math.ceil((6 * WORKERS * HANDOVER_LIMIT_BYTES) / 270);

/** Plain JavaScript for a thread of its own: sends `packet` `count` times, spread over `ports` sockets, then says so. */
const FLOODER = `
const { workerData } = require('node:worker_threads');
const dgram = require('node:dgram');
const { port, ports, count, packet, done } = workerData;
const flag = new Int32Array(done);
const sockets = [];
let bound = 0;
for (let i = 0; i < ports; i++) {
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => {});
  sockets.push(socket);
  socket.bind(0, '127.0.0.1', () => {
    if (++bound < ports) return;
    let sent = 0;
    const burst = () => {
      for (let n = 0; n < 500 && sent < count; n++, sent++) sockets[sent % ports].send(packet, port, '127.0.0.1');
      if (sent < count) setImmediate(burst);
      else setTimeout(() => { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }, 100);
    };
    burst();
  });
}
`;

function counts(text: string): { refused: number; failed: number } {
  const samples = parseExposition(text);
  return { refused: total(samples, 'layover_dns_queries_total', { result: 'refused' }), failed: total(samples, 'layover_dns_queries_total', { result: 'failed' }) };
}

describe('UDP answer workers under a flood while the main thread is busy', () => {
  it('drop and count what goes beyond the bound, then hand over again', async () => {
    const metrics = new Metrics();
    // Nobody may recurse: every hand-over is answered REFUSED by the main thread, and counted so.
    const { port, lines } = await startDnsServer({ policy: dnsPolicy({ allowRecursion: [] }), metrics, udpWorkers: WORKERS });

    const done = new SharedArrayBuffer(4);
    const flooder = new Worker(FLOODER, { eval: true, workerData: { port, ports: FLOOD_PORTS, count: FLOOD_PACKETS, packet: query(LONG_NAME, QTYPE.A), done } });
    onTestFinished(() => flooder.terminate().then(() => undefined));
    // The main thread is busy (held here) until the flood is out and the workers have read it.
    Atomics.wait(new Int32Array(done), 0, 0, 30_000);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);

    // Let the main thread catch up and the workers' counts reach the metrics.
    let seen = counts((await metrics.exposition()).body);
    for (let i = 0; i < 50; i++) {
      await delay(1_200);
      const now = counts((await metrics.exposition()).body);
      if (now.refused === seen.refused && now.failed === seen.failed) break;
      seen = now;
    }
    expect(seen.failed).toBeGreaterThan(0);
    expect(seen.refused + seen.failed).toBeLessThanOrEqual(FLOOD_PACKETS);
    expect(lines.some((line) => line.msg.startsWith('dns: udp workers dropped queries'))).toBe(true);

    // Nothing of the bound is left taken: every socket's hand-overs reach the main thread again.
    const replies = await udpBurst(port, 64, (client) => query('other.test', QTYPE.A, { id: client }), 64);
    for (const got of replies) {
      expect(got).toHaveLength(1);
      expect(got[0]!.readUInt16BE(2) & 0xf).toBe(RCODE.REFUSED);
    }
  });
});
