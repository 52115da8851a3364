import type { Socket } from 'node:net';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** How long a refused client may take to close its side before the socket is destroyed. */
const LINGER_MS = 2000;

/**
 * Answers a CONNECT that will not be served with a short text body and closes. The socket is ended,
 * not destroyed: bytes the client already sent (a pipelined ClientHello) are read and dropped until
 * it closes too, since closing with unread data makes the kernel send a reset that can overtake the
 * answer.
 */
export function refuseConnect(socket: Socket, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = `${message}\n`;
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  if (socket.destroyed) return;
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  socket.resume();
  socket.setTimeout(LINGER_MS, () => socket.destroy());
}

export const CONNECTION_ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
