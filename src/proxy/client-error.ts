import type { Socket } from 'node:net';
import { OciError } from '../registry/oci-errors.js';
import { rawOciError } from './error-handler.js';

/**
 * Answers a request Node's HTTP parser refused (oversized head, smuggling shapes, garbage) before
 * any route saw it, in the OCI error format every registry route uses, then closes the connection.
 * Nothing is written into a connection that already carries a response, and a client that went
 * away gets nothing.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return void socket.destroy();
  if (socket.writable && socket.bytesWritten === 0) {
    const refusal =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? new OciError('SIZE_INVALID', 'the request head is too large', undefined, { status: 431 })
        : new OciError('UNSUPPORTED', 'the request is malformed', undefined, { status: 400 });
    socket.write(rawOciError(refusal));
  }
  socket.destroy();
}
