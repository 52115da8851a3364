import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { BlobCache } from '../cache/blob-cache.js';
import type { PendingRead } from '../cache/blob-store.js';
import { annotateRequestLog } from '../log/request-log.js';
import { parseDigest, type Digest } from '../registry/digest.js';
import { sourceIsRegistry } from '../registry/same-registry.js';
import { OciError } from '../registry/oci-errors.js';
import { setBlobHeaders } from '../proxy/blob-headers.js';
import { whileWaiting } from '../proxy/body-framing.js';
import { DOCKER_PROXY_HOSTS } from '../proxy/docker-proxy-route.js';
import type { PendingFills } from '../proxy/pending-fills.js';
import { PEER_BLOB_PREFIX, PEER_LENGTH_HEADER, PEER_REGISTRY_HEADER } from './peer-client.js';
import { PEER_SIGNATURE_HEADER, type PeerKey } from './peer-key.js';

/** The debug line of a replica joining this one's fill (tests wait for it). */
export const PEER_JOINED = 'a replica follows this fill';

export interface PeerBlobRouteOptions {
  cache: BlobCache;
  pendingFills: PendingFills;
  key: PeerKey;
}

/**
 * `GET https://docker.proxy/layover/peer/blobs/<digest>`, for the other replicas only (signed with the
 * fleet's key, src/peers/peer-key.ts): the blob as this replica holds it, or its fill in progress as
 * the bytes arrive (a fill that has not started yet is waited for). Nothing here goes upstream: a
 * replica asks because this one holds the digest's fill lease; if it has nothing (the fill failed or
 * ended in a redirect), 404 tells the asker to decide again. The asker checked its client's access
 * and verifies the bytes itself.
 */
export async function peerBlobRoute(app: FastifyInstance, options: PeerBlobRouteOptions): Promise<void> {
  app.route<{ Params: { digest: string } }>({
    method: 'GET',
    url: `${PEER_BLOB_PREFIX}:digest`,
    constraints: { host: DOCKER_PROXY_HOSTS },
    handler: async (request, reply) => {
      const path = request.url.split('?')[0]!;
      if (!options.key.verify('GET', path, request.headers[PEER_SIGNATURE_HEADER])) {
        annotateRequestLog(request, { peer: 'refused' });
        throw new OciError('DENIED', 'this path is for the replicas of this Layover fleet only');
      }
      const digest = parseDigest(request.params.digest);
      if (!digest) throw new OciError('DIGEST_INVALID', 'not a sha256 or sha512 digest', { digest: request.params.digest.slice(0, 140) });
      annotateRequestLog(request, { digest, peer: 'served' });
      return serveToPeer(options, request, reply, digest);
    },
  });
}

async function serveToPeer({ cache, pendingFills }: PeerBlobRouteOptions, request: FastifyRequest, reply: FastifyReply, digest: Digest): Promise<FastifyReply> {
  // The asker follows this replica's fill of the registry its client named: bytes of another registry
  // go to that client only once its registry showed them (src/access/), which the asker checks itself.
  const registry = request.headers[PEER_REGISTRY_HEADER];
  const fromRegistry = (source: string): boolean => typeof registry === 'string' && sourceIsRegistry(source, registry);
  // One wait for a fill about to start is enough: a second pending one is another fetch, decided anew.
  const pending = pendingFills.get(digest);
  if (pending && !cache.activeFill(digest) && !cache.stat(digest)) await pending;
  const read = cache.read(digest);
  if (read && !fromRegistry(read.entry.source)) read.stream.destroy();
  else if (read && (await opens(read.stream))) {
    annotateRequestLog(request, { cache: 'hit', bytes: read.entry.size });
    return setBlobHeaders(reply, digest, read.entry.size).send(read.stream);
  }
  const fill = cache.activeFill(digest);
  if (fill && !fromRegistry(fill.meta.source)) {
    annotateRequestLog(request, { cache: 'miss' });
    throw new OciError('BLOB_UNKNOWN', 'this replica\'s fill of this blob comes from another registry', { digest });
  }
  if (fill && fill.meta.size === undefined && request.headers[PEER_LENGTH_HEADER] === 'required') {
    // The asker's client cannot take a body of unknown length: the blob once verified, or nothing.
    request.log.debug({ digest }, PEER_JOINED);
    await whileWaiting(request, fill.done).catch(() => undefined);
    if (request.raw.destroyed) return reply;
    const committed = cache.read(digest);
    if (committed && fromRegistry(committed.entry.source) && (await opens(committed.stream))) {
      annotateRequestLog(request, { cache: 'hit', bytes: committed.entry.size });
      return setBlobHeaders(reply, digest, committed.entry.size).send(committed.stream);
    }
    committed?.stream.destroy();
    throw new OciError('BLOB_UNKNOWN', 'this replica\'s fill of this blob did not commit', { digest });
  }
  if (fill) {
    annotateRequestLog(request, { cache: 'miss', joined: true, bytes: fill.meta.size });
    request.log.debug({ digest }, PEER_JOINED);
    return setBlobHeaders(reply, digest, fill.meta.size).send(fill.reader());
  }
  annotateRequestLog(request, { cache: 'miss' });
  throw new OciError('BLOB_UNKNOWN', 'this replica holds no fill of this blob', { digest });
}

/** True once a store read is open (a file or object stream that may still fail to open); false if it cannot be. */
function opens(stream: Readable & Partial<PendingRead>): Promise<boolean> {
  if (stream.pending !== true) return Promise.resolve(true);
  return new Promise((resolve) => {
    const opened = (): void => {
      stream.off('error', failed);
      resolve(true);
    };
    const failed = (): void => {
      stream.off('ready', opened);
      resolve(false);
    };
    stream.once('ready', opened).once('error', failed);
  });
}
