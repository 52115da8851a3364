import { pipeline } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HostPort } from '../config/parsers.js';
import { annotateRequestLog, type RequestLogFields } from '../log/request-log.js';
import type { BlobCache, Fill } from '../cache/blob-cache.js';
import type { Fleet } from '../peers/fleet.js';
import type { FillClaim } from '../peers/fleet-fills.js';
import type { PeerAnswer } from '../peers/peer-client.js';
import { verifiedRelay } from '../peers/verified-relay.js';
import type { Digest } from '../registry/digest.js';
import { originHost } from '../upstream/origin-host.js';
import { setBlobHeaders } from './blob-headers.js';
import { endsOnlyByClosing, takesNoChunkedBody, whileWaiting } from './body-framing.js';
import { discardBody } from '../upstream/read-limited.js';

/** What the blob route does when following a peer did not work out: decide again who fetches. */
export type DecideAgain = () => void;

/** How often one request may be sent back to the fleet's decision (its owner had nothing, or went away) before it fetches alone. */
const MAX_FLEET_DECISIONS = 3;
const fleetDecisions = new WeakMap<FastifyRequest, number>();

/**
 * This replica's turn at a missing digest: fetch it (settling with `settle`), follow the replica that
 * does, or answer again (the fleet holds it already: a commit whose announcement had not arrived).
 */
export type FleetTurn = { readonly fetch: (fill: Fill | undefined) => void } | { readonly follow: HostPort } | { readonly again: true };

/**
 * Settles which replica fetches `digest`, which this request would fetch from upstream `origin`
 * (`https://host[:port]`; src/peers/fleet-fills.ts). `settle` is the caller's pending
 * slot for the digest, held meanwhile so that this replica's other clients wait for the decision:
 * when this replica fetches it comes back wrapped, so that it also holds the fleet's claim for as
 * long as the fill runs (or gives it back if no fill starts); when another replica fetches, it is
 * settled here, and this replica's waiting clients decide for themselves (they follow the same one).
 * Another replica's fill from another upstream is not followed: the bytes of one registry go to a
 * client of another only once it has shown them (src/access/), so this request fetches alone and its
 * own registry's bytes are verified. A request sent back to the decision too often fetches alone.
 */
export async function fleetTurn(fleet: Fleet, cache: BlobCache, request: FastifyRequest, digest: Digest, origin: string, settle: (fill: Fill | undefined) => void): Promise<FleetTurn> {
  const decisions = (fleetDecisions.get(request) ?? 0) + 1;
  fleetDecisions.set(request, decisions);
  if (decisions > MAX_FLEET_DECISIONS) {
    annotateRequestLog(request, { fleet: 'alone' });
    return { fetch: settle };
  }
  const host = originHost(origin);
  const decision = await fleet.fills.decide(digest, host).catch((error: unknown) => {
    settle(undefined);
    throw error;
  });
  switch (decision.kind) {
    case 'mine':
      // The lease is given back once a fill is committed, and the news of that commit may still be on its way.
      if (await cache.lookUp(digest)) {
        decision.claim.release();
        settle(undefined);
        return { again: true };
      }
      return { fetch: holdingClaim(settle, decision.claim) };
    case 'alone':
      annotateRequestLog(request, { fleet: 'alone' });
      return { fetch: settle };
    case 'peer':
      if (decision.origin !== host) {
        annotateRequestLog(request, { fleet: 'alone' });
        return { fetch: settle };
      }
      settle(undefined);
      return { follow: decision.peer };
  }
}

function holdingClaim(settle: (fill: Fill | undefined) => void, claim: FillClaim): (fill: Fill | undefined) => void {
  let done = false;
  return (fill) => {
    settle(fill);
    if (done) return;
    done = true;
    if (fill) claim.keepFor(fill.done);
    else claim.release();
  };
}

/**
 * A blob another replica is fetching (it holds the digest's fill lease), streamed from that replica's
 * fill to this client as the bytes arrive, through a relay that hashes them and holds the last chunk
 * back until they matched: an owner that dies mid-way cuts this answer short, never completes it
 * wrongly. An owner that cannot be reached is waited out (its lease expires, then another replica
 * takes the fetch over); one that has nothing (its fetch failed or ended in a redirect) sends the
 * client back to the decision. Access to the digest has been checked by the caller, and the owner
 * sends only a fill or copy of `registry`, the one this client named (else a 404: decide again).
 */
export async function followPeerFill(
  fleet: Fleet,
  request: FastifyRequest,
  reply: FastifyReply,
  { digest, registry }: { digest: Digest; registry: string },
  peer: HostPort,
  log: RequestLogFields,
  decideAgain: DecideAgain,
): Promise<void> {
  if (reply.raw.destroyed) return;
  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  reply.raw.once('close', onClose);
  let answer: PeerAnswer;
  try {
    // An HTTP/1.0 client cannot take a body of unknown length: the owner then answers once its fill is verified, with the length.
    const lengthRequired = takesNoChunkedBody(request);
    const asked = fleet.client.fetchBlob(peer, digest, registry, gone.signal, { lengthRequired });
    answer = await (lengthRequired ? whileWaiting(request, asked) : asked);
  } catch (error) {
    if (gone.signal.aborted) return;
    request.log.warn({ err: error, digest, peer: `${peer.host}:${peer.port}` }, 'fleet fills: the replica fetching this blob cannot be reached; waiting for its lease to end');
    fleet.fills.unreachable(peer);
    return decideAgain();
  } finally {
    reply.raw.off('close', onClose);
  }
  if (answer.statusCode !== 200) {
    discardBody(answer.body);
    if (answer.statusCode === 403) {
      // The replicas do not share one CA, so not one key: not asked again soon.
      request.log.error({ digest, peer: `${peer.host}:${peer.port}`, status: answer.statusCode }, 'fleet fills: a replica refused to share its fill (do all replicas use the same CA?)');
      fleet.fills.unreachable(peer);
    } else if (answer.statusCode !== 404) {
      request.log.warn({ digest, peer: `${peer.host}:${peer.port}`, status: answer.statusCode }, 'fleet fills: a replica could not share its fill; deciding again');
    }
    return decideAgain();
  }
  annotateRequestLog(request, { ...log, cache: 'miss', peer: `${peer.host}:${peer.port}`, bytes: answer.size });
  if (endsOnlyByClosing(request, answer.size)) {
    // The owner was asked for a length and gave none (a replica of an older Layover): not relayed.
    answer.body.on('error', () => undefined).destroy();
    return decideAgain();
  }
  const relay = verifiedRelay(digest, answer.size);
  pipeline(answer.body, relay, (error) => {
    if (error && !reply.raw.destroyed) request.log.warn({ err: error, digest, peer: `${peer.host}:${peer.port}` }, 'fleet fills: the blob a replica relayed broke off or did not match; the answer is cut short');
  });
  void setBlobHeaders(reply.code(200), digest, answer.size).send(relay);
}
