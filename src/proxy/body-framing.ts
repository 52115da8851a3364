import type { FastifyRequest } from 'fastify';

/** An HTTP/1.0 client: it has no chunked encoding, so a body of no known length ends only by the connection's close. */
export function takesNoChunkedBody(request: FastifyRequest): boolean {
  return request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor === 0;
}

/**
 * A body of `size` to this client would end only by the connection's close, and a download that proved
 * the bytes wrong ends it the same way, after all but the last byte. Such a client gets a blob only
 * once it is verified, with its length.
 */
export function endsOnlyByClosing(request: FastifyRequest, size: number | undefined): boolean {
  return size === undefined && takesNoChunkedBody(request);
}

/**
 * `waiting` while the client's connection sends nothing (a blob served once verified): the connection's
 * idle timeout is off meanwhile, as the download has a stall timeout of its own, and back after.
 */
export async function whileWaiting<T>(request: FastifyRequest, waiting: Promise<T>): Promise<T> {
  const socket = request.raw.socket;
  const idle = socket.timeout ?? 0;
  socket.setTimeout(0);
  try {
    return await waiting;
  } finally {
    if (!socket.destroyed) socket.setTimeout(idle);
  }
}
