import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { UdpReplyBatch } from '../../../src/dns/reply-batch.js';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close();
});

async function bound(): Promise<{ socket: dgram.Socket; port: number }> {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, port: socket.address().port };
}

/** The next `count` datagrams `socket` receives, as text. */
function received(socket: dgram.Socket, count: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve) => {
    socket.on('message', (msg) => {
      got.push(msg.toString());
      if (got.length === count) resolve(got);
    });
  });
}

describe('UdpReplyBatch', () => {
  test('sends the replies of one turn together at its end, in order, each to its client', async () => {
    const server = await bound();
    const first = await bound();
    const second = await bound();
    const sent = vi.spyOn(server.socket, 'send');
    const batch = new UdpReplyBatch(() => undefined);
    const atFirst = received(first.socket, 2);
    const atSecond = received(second.socket, 1);
    batch.send(server.socket, Buffer.from('a'), first.port, '127.0.0.1');
    batch.send(server.socket, Buffer.from('b'), second.port, '127.0.0.1');
    batch.send(server.socket, Buffer.from('c'), first.port, '127.0.0.1');
    // Nothing leaves during the turn that queued them.
    expect(sent).not.toHaveBeenCalled();
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toHaveBeenCalledTimes(3);
    expect(await atFirst).toEqual(['a', 'c']);
    expect(await atSecond).toEqual(['b']);
    // The next turn's replies form a batch of their own.
    const later = received(second.socket, 1);
    batch.send(server.socket, Buffer.from('d'), second.port, '127.0.0.1');
    expect(sent).toHaveBeenCalledTimes(3);
    expect(await later).toEqual(['d']);
  });

  test('a socket closed meanwhile is reported, and the other replies still go', async () => {
    const closing = await bound();
    const server = await bound();
    const client = await bound();
    const errors: string[] = [];
    const batch = new UdpReplyBatch((err, address) => errors.push(`${address}: ${err.message}`));
    const atClient = received(client.socket, 1);
    batch.send(closing.socket, Buffer.from('lost'), client.port, '127.0.0.1');
    batch.send(server.socket, Buffer.from('kept'), client.port, '127.0.0.1');
    closing.socket.close();
    sockets.splice(sockets.indexOf(closing.socket), 1);
    expect(await atClient).toEqual(['kept']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^127\.0\.0\.1: .*not running/i);
  });
});
