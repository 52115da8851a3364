import { pipeline } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HostPort } from '../config/parsers.js';
import { annotateRequestLog, type RequestLogFields } from '../log/request-log.js';
import type { Fleet } from '../peers/fleet.js';
import type { PeerAnswer } from '../peers/peer-client.js';
import { verifiedRelay } from '../peers/verified-relay.js';
import type { Digest } from '../registry/digest.js';
import { setBlobHeaders } from './blob-headers.js';

/** What the blob route does when following a peer did not work out: decide again who fetches. */
export type DecideAgain = () => void;

/**
 * A blob another replica is fetching (it holds the digest's fill lease), streamed from that replica's
 * fill to this client as the bytes arrive, through a relay that hashes them and holds the last chunk
 * back until they matched: an owner that dies mid-way cuts this answer short, never completes it
 * wrongly. An owner that cannot be reached is waited out (its lease expires, then another replica
 * takes the fetch over); one that has nothing (its fetch failed or ended in a redirect) sends the
 * client back to the decision. Access to the digest has been checked by the caller.
 */
export async function followPeerFill(fleet: Fleet, request: FastifyRequest, reply: FastifyReply, digest: Digest, peer: HostPort, log: RequestLogFields, decideAgain: DecideAgain): Promise<void> {
  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  reply.raw.once('close', onClose);
  let answer: PeerAnswer;
  try {
    answer = await fleet.client.fetchBlob(peer, digest, gone.signal);
  } catch (error) {
    if (gone.signal.aborted) return;
    request.log.warn({ err: error, digest, peer: `${peer.host}:${peer.port}` }, 'fleet fills: the replica fetching this blob cannot be reached; waiting for its lease to end');
    fleet.fills.unreachable(peer);
    return decideAgain();
  } finally {
    reply.raw.off('close', onClose);
  }
  if (answer.statusCode !== 200) {
    answer.body.resume();
    if (answer.statusCode !== 404) {
      // 403: the replicas do not share one CA (so not one key); anything else: it is not well. Either way, not dialled again soon.
      request.log.error({ digest, peer: `${peer.host}:${peer.port}`, status: answer.statusCode }, 'fleet fills: a replica refused to share its fill (do all replicas use the same CA?)');
      fleet.fills.unreachable(peer);
    }
    return decideAgain();
  }
  annotateRequestLog(request, { ...log, cache: 'miss', peer: `${peer.host}:${peer.port}`, bytes: answer.size });
  const relay = verifiedRelay(digest, answer.size);
  pipeline(answer.body, relay, (error) => {
    if (error && !reply.raw.destroyed) request.log.warn({ err: error, digest, peer: `${peer.host}:${peer.port}` }, 'fleet fills: the blob a replica relayed broke off or did not match; the answer is cut short');
  });
  void setBlobHeaders(reply.code(200), digest, answer.size).send(relay);
}
