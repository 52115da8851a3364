import type { FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import type { Digest } from '../registry/digest.js';
import { setBlobHeaders } from './blob-headers.js';
import { failReply } from './error-handler.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';

/**
 * A cached blob this small (an image config, a small layer) is answered whole from the cache's memory
 * after its first read (BlobReader.readBytes): streaming it from its file opens, reads and closes the
 * file on every GET, three trips to the thread pool that cost more than the rest of the request.
 */
export const SMALL_BLOB_BYTES = 64 * 1024;

export interface SmallBlobFallbacks {
  /** Evicted since it was looked up: a miss after all. */
  gone: () => unknown;
  /** Its bytes could not be read: the streaming path, which knows what to do with a missing or unreachable store. */
  unreadable: () => unknown;
}

/** A whole GET of a committed blob of at most SMALL_BLOB_BYTES, from memory (or read into it once). */
export function sendSmallBlob(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, digest: Digest, { gone, unreadable }: SmallBlobFallbacks): FastifyReply {
  ctx.cache
    .readBytes(digest, SMALL_BLOB_BYTES)
    .catch((error: unknown) => {
      request.log.debug({ err: error, digest }, 'cache: a small blob could not be read whole; streaming it instead');
      return 'unreadable' as const;
    })
    .then((read) => {
      if (read === 'unreadable') return void unreadable();
      if (!read) return void gone();
      annotateRequestLog(request, { bytes: read.bytes.length });
      setBlobHeaders(reply, digest, read.bytes.length);
      void reply.send(read.bytes);
    })
    .catch((error: unknown) => failReply(request, reply, error));
  return reply;
}
