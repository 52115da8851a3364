import { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';
import { expect, it, vi } from 'vitest';
import { SilentConnections } from '../../../src/net/silent-connections.js';

/** A socket as far as SilentConnections looks at one: its events and destroy(). */
const socket = (): Socket => Object.assign(new EventEmitter(), { destroy: vi.fn() }) as unknown as Socket;

it('ends at a stop the connections that sent no request, and only those', () => {
  const server = new EventEmitter() as unknown as Server;
  const silent = new SilentConnections();
  silent.attach(server, { tls: true });
  const [quiet, askedNode, askedBefore, gone] = [socket(), socket(), socket(), socket()];
  for (const s of [quiet, askedNode, askedBefore, gone]) server.emit('secureConnection', s);
  server.emit('request', { socket: askedNode });
  // A request answered before Node's HTTP server saw it (src/proxy/hit-connections.ts).
  silent.heard(askedBefore);
  gone.emit('close');
  silent.closeAll();
  expect(quiet.destroy).toHaveBeenCalledOnce();
  for (const s of [askedNode, askedBefore, gone]) expect(s.destroy).not.toHaveBeenCalled();
});
