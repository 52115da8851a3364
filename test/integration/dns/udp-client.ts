/** A UDP socket bound to one loopback address, keeping every reply it gets; closed when the test ends. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { onTestFinished } from 'vitest';

export interface UdpClient {
  socket: dgram.Socket;
  replies: Buffer[];
}

export async function udpClient(address: string): Promise<UdpClient> {
  const socket = dgram.createSocket('udp4');
  onTestFinished(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  const replies: Buffer[] = [];
  socket.on('message', (msg) => replies.push(msg));
  socket.bind(0, address);
  await once(socket, 'listening');
  return { socket, replies };
}
