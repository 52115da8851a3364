import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ReadDecision } from '../access/read-access.js';
import type { CachedObject } from '../access/upstream-probe.js';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { failReply } from './error-handler.js';
import { layoverAuthorizes, upstreamCallerOf } from './layover-authorizes.js';
import { challengeForClient } from './upstream-request.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import type { UpstreamTarget } from './upstream-target.js';

/**
 * Runs `serve` (which sends cached bytes) only once the client may read `object` in `name`
 * (src/access/); otherwise answers the refusal, with the upstream's challenge on a 401 so the client
 * can authenticate and ask again. A refusal, a failed check and anything `serve` throws or rejects
 * with all end in the error answer: nothing is left to become an unhandled rejection.
 * `unknown`, when given, runs instead of the 404 when upstream does not have the object in `name`
 * (a tag's record that names a digest the repository does not hold: the tag is asked for again).
 */
export function whenReadable(
  ctx: ProxyContext,
  request: FastifyRequest,
  reply: FastifyReply,
  target: UpstreamTarget,
  name: RepositoryName,
  object: CachedObject,
  serve: () => unknown,
  unknown?: () => FastifyReply,
): FastifyReply {
  const known = ctx.readAccess.allowedNow(target, name, object, request.headers.authorization);
  const served = known === undefined ? checkThenServe(ctx, request, target, name, object, serve, unknown) : serveAllowed(request, known, serve);
  served.catch((error: unknown) => failReply(request, reply, error));
  return reply;
}

/** A yes known without asking anyone: served in this turn of the event loop. */
function serveAllowed(request: FastifyRequest, why: string, serve: () => unknown): Promise<unknown> {
  annotateRequestLog(request, { access: why });
  try {
    return Promise.resolve(serve());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Checks after which the bytes here may still be another registry's (they arrived while upstream was asked): then a retry. */
const MAX_CHECKS = 3;

async function checkThenServe(ctx: ProxyContext, request: FastifyRequest, target: UpstreamTarget, name: RepositoryName, object: CachedObject, serve: () => unknown, unknown?: () => FastifyReply): Promise<void> {
  let decision = await ctx.readAccess.check(target, name, object, request.headers.authorization, request.log);
  // A yes is for the bytes here when it was given: served in the same turn, or asked again if another registry's came meanwhile.
  for (let checks = 1; decision.allowed && !ctx.readAccess.servesOwnBytes(target, object); checks++) {
    if (checks === MAX_CHECKS) {
      decision = { allowed: false, error: new OciError('UNAVAILABLE', `the cached copy of ${object.digest} changed while access was checked: retry`) };
      break;
    }
    decision = await ctx.readAccess.check(target, name, object, request.headers.authorization, request.log);
  }
  if (!decision.allowed && unknown && decision.error.status === 404) {
    request.log.debug({ registry: target.registry, repo: name, digest: object.digest }, 'upstream does not hold the digest a cached record named: asking again');
    // Not awaited: it answers on its own (a reply), and its end is not this check's.
    unknown();
    return;
  }
  if (!decision.allowed) {
    annotateRequestLog(request, { registry: target.registry, repo: name, digest: object.digest, cache: 'denied' });
    throw refusal(decision, (challenge) => challengeForClient(request, target, ctx.upstreamAuth, challenge, layoverAuthorizes(ctx.upstreamAuth, target, upstreamCallerOf(request))));
  }
  annotateRequestLog(request, { access: decision.why });
  await serve();
}

/** The decision's error, carrying the upstream's challenge as the client may see it (`shown`) as its own header. */
function refusal(decision: Extract<ReadDecision, { allowed: false }>, shown: (challenge: string | string[]) => string | string[] | undefined): OciError {
  const { error } = decision;
  const challenge = decision.challenge === undefined ? undefined : shown(decision.challenge);
  if (!challenge) return error;
  return new OciError(error.code, error.message, error.detail, { status: error.status, headers: { ...error.headers, 'www-authenticate': challenge }, cause: error });
}
