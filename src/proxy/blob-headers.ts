import type { FastifyReply } from 'fastify';
import type { Digest } from '../registry/digest.js';
import { OciError } from '../registry/oci-errors.js';

/**
 * The headers of every successful blob answer, whoever served it (cache, fill, upstream, storage
 * host): a miss and a hit for the same blob look the same, and nothing an upstream or a storage host
 * said about its own answer (its type, encoding, ETag, cookies) leaks.
 */
export function setBlobHeaders(reply: FastifyReply, digest: Digest, length: number | undefined): FastifyReply {
  return reply.headers(blobHeaders(digest, length));
}

/** setBlobHeaders' headers, for an answer written without fastify (src/proxy/hit-path.ts). */
export function blobHeaders(digest: Digest, length: number | undefined): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'accept-ranges': 'bytes',
    'docker-distribution-api-version': 'registry/2.0',
  };
  if (length !== undefined) headers['content-length'] = length;
  return headers;
}

/** 416 with the blob's size (RFC 9110 §15.5.17), in the OCI error body every registry route answers with. */
export function rangeNotSatisfiable(size: number): OciError {
  return new OciError('RANGE_INVALID', `the range is outside the blob's ${size} bytes`, undefined, { headers: { 'content-range': `bytes */${size}` } });
}
