import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { OciError } from '../registry/oci-errors.js';

/**
 * Answers a request Node's HTTP parser refused (oversized head, smuggling shapes, garbage) before
 * any route saw it, in the OCI error format every registry route uses, then closes the connection.
 * Nothing is written into a connection that already carries a response, and a client that went
 * away gets nothing.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return void socket.destroy();
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  if (socket.writable && socket.bytesWritten === 0) {
    const message = status === 431 ? 'the request head is too large' : 'the request is malformed';
    const body = JSON.stringify(new OciError(status === 431 ? 'SIZE_INVALID' : 'UNSUPPORTED', message, undefined, { status }).toBody());
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}
