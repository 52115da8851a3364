/**
 * What Layover relays upstream for a forwarded name is the question and what its answer cache keys on
 * (EDNS, DO, CD), with recursion desired, never the client's own RD bit, EDNS options or extra
 * records: the upstream's reply is cached and shared with every client, so nothing one client sent
 * may shape it. The upstream here is a UDP socket that records the bytes it gets and answers them: a
 * fixture, because no real resolver shows the raw query it received (dnsmasq's log names the question
 * only).
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { expect, it, onTestFinished } from 'vitest';
import { startDnsServer } from './start-dns-server.js';

/** A resolver that answers every query with an empty NOERROR reply, keeping what it received. */
async function recordingUpstream(): Promise<{ port: number; received: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  onTestFinished(() => void socket.close());
  const received: Buffer[] = [];
  socket.on('message', (query, peer) => {
    received.push(query);
    const reply = Buffer.from(query);
    reply.writeUInt16BE(0x8180, 2); // QR, RD, RA, NOERROR
    socket.send(reply, peer.port, peer.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { port: socket.address().port, received };
}

/** example.test A with RD clear, and EDNS (payload 4096, DO) carrying a cookie option of its own. */
function clientQuery(cookie: Buffer): Buffer {
  const header = Buffer.from([0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
  const question = Buffer.from([7, ...Buffer.from('example'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1]);
  const option = Buffer.concat([Buffer.from([0, 10, 0, cookie.length]), cookie]);
  const opt = Buffer.concat([Buffer.from([0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, option.length]), option]);
  return Buffer.concat([header, question, opt]);
}

it('relays the question with RD and its own EDNS, none of the client\'s flags, options or records', async () => {
  const upstream = await recordingUpstream();
  const { port } = await startDnsServer({ upstreams: [{ host: '127.0.0.1', port: upstream.port }] });
  const client = dgram.createSocket('udp4');
  onTestFinished(() => void client.close());
  const cookie = Buffer.from('c0ffee00c0ffee00', 'hex');
  client.send(clientQuery(cookie), port, '127.0.0.1');
  const [reply] = (await once(client, 'message')) as [Buffer];
  expect(reply.readUInt16BE(0)).toBe(0x1234);

  expect(upstream.received).toHaveLength(1);
  const relayed = upstream.received[0]!;
  expect(relayed.readUInt16BE(2) & 0x0100).toBe(0x0100); // RD, which the client had cleared
  expect(relayed.readUInt16BE(10)).toBe(1); // one additional record: Layover's OPT
  expect(relayed.includes(cookie)).toBe(false);
  const opt = relayed.subarray(relayed.length - 11);
  expect([...opt.subarray(0, 3)]).toEqual([0, 0, 41]); // root name, TYPE OPT
  expect(opt.readUInt16BE(3)).toBe(1232); // Layover's payload size, not the client's 4096
  expect(opt.readUInt32BE(5)).toBe(0x8000); // DO kept: it is part of the cache's key
  expect(opt.readUInt16BE(9)).toBe(0); // no options
});
