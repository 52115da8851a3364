/**
 * Clients for the connection-cap tests: raw TCP sockets that connect and then say nothing (the
 * flood), and real HTTP(S) requests from a chosen loopback source address (the legitimate client).
 */
import { once } from 'node:events';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect, type Socket } from 'node:net';

export interface SilentSocket {
  socket: Socket;
  /** The server closed (or reset) it. */
  closed: boolean;
}

/**
 * Opens sockets one after the other (each connected before the next starts, so the server
 * accepts them in this order) from `localAddress` (one address, or one per socket), and never
 * writes to them. Every socket is destroyed when the test finishes, by `destroyAll`.
 */
export async function openSilentSockets(port: number, count: number, localAddress: string | ((index: number) => string)): Promise<SilentSocket[]> {
  const sockets: SilentSocket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: '127.0.0.1', port, localAddress: typeof localAddress === 'string' ? localAddress : localAddress(i) });
    const entry: SilentSocket = { socket, closed: false };
    socket.on('error', () => undefined);
    socket.once('close', () => (entry.closed = true));
    sockets.push(entry);
    await Promise.race([once(socket, 'connect'), once(socket, 'close')]);
  }
  return sockets;
}

export function destroyAll(sockets: readonly SilentSocket[]): void {
  for (const { socket } of sockets) socket.destroy();
}

/** Polls `condition` until it holds or `boundMs` passed; returns whether it held (a generous bound, not a timing claim). */
export async function eventually(condition: () => boolean, boundMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

export interface Answer {
  status: number;
  body: string;
}

/** GET https://NAME:PORT/PATH at 127.0.0.1 from `localAddress`, verifying the certificate against `ca`. */
export function httpsGetFrom(localAddress: string, port: number, name: string, path: string, ca: string): Promise<Answer> {
  return collect(httpsGet({ host: '127.0.0.1', port, localAddress, servername: name, path, ca, agent: false, headers: { host: name } }));
}

/** GET http://127.0.0.1:PORT/PATH from `localAddress`. */
export function httpGetFrom(localAddress: string, port: number, path: string): Promise<Answer> {
  return collect(httpGet({ host: '127.0.0.1', port, localAddress, path, agent: false }));
}

function collect(request: ReturnType<typeof httpGet>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    request.setTimeout(10_000, () => request.destroy(new Error('no answer within 10 s')));
    request.once('error', reject);
    request.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
  });
}
