/**
 * Many UDP clients, each on a source port of its own, all bound before any sends, then one query
 * from each in a single synchronous loop: a burst that reaches every socket of an SO_REUSEPORT
 * group at once. Every socket is closed when the test ends.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { onTestFinished } from 'vitest';

/** Sends `packet(client)` from `clients` sockets at once; the replies each got, once `expectReplies` came or 5 s passed. */
export async function udpBurst(port: number, clients: number, packet: (client: number) => Buffer, expectReplies: number): Promise<Buffer[][]> {
  const sockets: dgram.Socket[] = [];
  onTestFinished(() => Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve())))).then(() => undefined));
  const replies: Buffer[][] = [];
  for (let client = 0; client < clients; client++) {
    const socket = dgram.createSocket('udp4');
    sockets.push(socket);
    const got: Buffer[] = [];
    replies.push(got);
    socket.on('message', (msg) => got.push(msg));
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
  }
  const packets = sockets.map((_, client) => packet(client));
  sockets.forEach((socket, client) => socket.send(packets[client]!, port, '127.0.0.1'));
  for (let i = 0; i < 250 && replies.reduce((sum, got) => sum + got.length, 0) < expectReplies; i++) await delay(20);
  return replies;
}
