import type { Readable } from 'node:stream';
import { retryAfterSeconds } from '../upstream/docker-hub-budget.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import { identityOf } from '../client-auth/authenticated-requests.js';
import { annotateRequestLog } from '../log/request-log.js';
import { requestMetrics } from '../metrics/request-metrics.js';
import { upstreamFailureCause } from '../metrics/upstream-failure-cause.js';
import { OciError } from '../registry/oci-errors.js';
import type { UpstreamDispatcher } from '../upstream/upstream-agent.js';
import { UpstreamAuthError } from '../upstream/auth/auth-error.js';
import { authFailure, upstreamErrors, upstreamRefusal } from '../upstream/auth/auth-failure.js';
import { type AuthGrant, type AuthScope, clientBringsCredentials, type UpstreamAuth } from '../upstream/auth/upstream-auth.js';
import { discardBody, readLimited, WHOLE_BODY_DEADLINE_MS } from '../upstream/read-limited.js';
import { clearReplyHeaders, failReply } from './error-handler.js';
import { UPSTREAM_BODY_HEADERS } from './upstream-body-headers.js';
import { unreachable } from './upstream-unreachable.js';
import { layoverAuthorizes, upstreamCallerOf } from './layover-authorizes.js';
import { clientLink, clientLocation } from '../registry/client-location.js';
import type { UpstreamRewrite, UpstreamTarget } from './upstream-target.js';

export { unreachable } from './upstream-unreachable.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The upstream dispatcher (src/app.ts decorates the TLS listener with it). */
    upstream: UpstreamDispatcher;
  }
}

/** The upstream response as reply-from hands it to onResponse. */
export interface UpstreamResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  stream: Readable;
}

export interface UpstreamRequestOptions {
  /** Ask upstream for identity encoding: bytes we hash must be the bytes as stored. */
  identity?: boolean;
  method?: 'GET' | 'HEAD';
  onResponse?: (response: UpstreamResponse) => void;
  /** Called instead of the default 503 when the upstream cannot be reached at all. */
  onUnreachable?: (error: Error) => void;
  /**
   * Upstream credentials (`ctx.upstreamAuth.for(repository)`): Layover's own go upstream when the
   * client sent none, and a 401/403 becomes an OCI UNAUTHORIZED/DENIED naming the registry
   * (onResponse does not see it).
   */
  auth?: AuthScope;
}

/** How one request is authorized upstream (src/upstream/auth/). */
interface Authorization {
  grant: AuthGrant;
  /** Layover authorizes this registry's requests itself: it may retry a 401 once and points Bearer realms at itself. */
  managed: boolean;
  retried: boolean;
}

/**
 * Sends the client's request to the upstream registry with reply-from and
 * streams the answer back (status and headers unchanged; auth challenges and
 * refusals as `auth` says) unless `onResponse` takes over. No retries: a failing upstream must fail
 * fast so a cached copy can be served instead.
 */
export function forwardUpstream(request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, options: UpstreamRequestOptions = {}): FastifyReply {
  const scope = options.auth;
  if (!scope) return send(request, reply, target, options, null);
  if (!layoverAuthorizes(scope.auth, target, upstreamCallerOf(request))) {
    // No credential can apply: the request goes as it came, only a refusal is made clear.
    const grant: AuthGrant = { dropClientHeader: false, clientOwn: clientBringsCredentials(request.headers.authorization), challenge: null, passChallenge: scope.ping === true };
    return send(request, reply, target, options, { grant, managed: false, retried: false });
  }
  authorizeAndSend(request, reply, target, options, scope, false);
  return reply;
}

function authorizeAndSend(request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, options: UpstreamRequestOptions, scope: AuthScope, retried: boolean): void {
  scope.auth
    .authorize(target.origin, scope, request.headers.authorization, request.log)
    .catch((error: unknown) => {
      if (error instanceof UpstreamAuthError && error.kind === 'unreachable') {
        const cause = error.cause instanceof Error ? error.cause : error;
        requestMetrics(request)?.upstreamFailed(target.registry, upstreamFailureCause(cause));
        request.log.warn({ registry: target.registry, err: cause }, 'upstream unreachable');
        if (options.onUnreachable) options.onUnreachable(cause);
        else void reply.send(unreachable(target, cause));
        return null;
      }
      throw error instanceof UpstreamAuthError ? authFailure(error, target.registry) : error;
    })
    .then((grant) => {
      if (!grant) return;
      if (grant.credential) annotateRequestLog(request, { credential: grant.credential });
      send(request, reply, target, options, { grant, managed: true, retried });
    })
    .catch((error: unknown) => failReply(request, reply, error));
}

function send(request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, options: UpstreamRequestOptions, authorization: Authorization | null): FastifyReply {
  const metrics = requestMetrics(request);
  // Latency is the time to the answer's headers: a blob's body takes as long as its size.
  const started = performance.now();
  const hooks: FastifyReplyFromHooks = {
    getUpstream: () => target.origin,
    // No retries (a failing upstream must fail fast so a cached copy can be
    // served), except once over h2 for an origin that answered 426.
    retryDelay: ({ res, attempt }) => {
      if (res?.statusCode !== 426 || attempt > 0 || !request.server.upstream.upgradeOn426(target.origin)) return null;
      discardBody((res as unknown as UpstreamResponse).stream);
      request.log.info({ registry: target.registry }, 'upstream requires HTTP/2: switching to h2');
      return 1;
    },
    rewriteRequestHeaders: (_request, headers) => {
      const out = { ...headers };
      if (options.identity) out['accept-encoding'] = 'identity';
      if (authorization?.grant.dropClientHeader) delete out.authorization;
      if (authorization?.grant.header) out.authorization = authorization.grant.header;
      return out;
    },
    onError: (replyFrom, { error }) => {
      const cause = (error as { cause?: Error }).cause ?? error;
      metrics?.upstreamFailed(target.registry, upstreamFailureCause(error));
      request.log.warn({ registry: target.registry, err: cause }, 'upstream unreachable');
      try {
        if (options.onUnreachable) options.onUnreachable(cause);
        else void replyFrom.send(unreachable(target, cause));
      } catch (thrown) {
        failReply(request, reply, thrown);
      }
    },
  };
  if (options.method) hooks.method = options.method;
  const rewrite = target.rewrite;
  if (rewrite) {
    // reply-from would otherwise append the client's query (containerd's `ns`) to the path.
    hooks.queryString = () => rewrite.query;
  }
  hooks.rewriteHeaders = (headers) => {
    const out = withoutHopByHop(headers);
    const challenge = headers['www-authenticate'];
    if (challenge !== undefined) {
      const shown = challengeForClient(request, target, options.auth?.auth, challenge, authorization?.managed === true);
      if (shown === undefined) delete out['www-authenticate'];
      // Several challenges are several header values (Node writes an array as repeated headers).
      else (out as Record<string, string | string[] | undefined>)['www-authenticate'] = shown;
    }
    if (rewrite) renameLocations(out, target.origin, rewrite);
    return out;
  };
  hooks.onResponse = (_request, replyFrom, raw) => {
    const res = raw as unknown as UpstreamResponse;
    metrics?.upstreamAnswered(target.registry, (performance.now() - started) / 1000, res.statusCode);
    if (authorization && !authorization.grant.passChallenge && (res.statusCode === 401 || res.statusCode === 403)) {
      refuse(request, reply, target, options, authorization, res).catch((error: unknown) => failReply(request, reply, error));
      return;
    }
    // Docker Hub counts pulls; keep its quota in the log line (the headers also reach the client).
    const limit = res.headers['ratelimit-remaining'];
    if (typeof limit === 'string') annotateRequestLog(request, { ratelimitRemaining: limit.split(';')[0] });
    // reply-from calls this from undici's callback: a throw here would end the process.
    try {
      if (options.onResponse) options.onResponse(res);
      else void replyFrom.send(res.stream);
    } catch (error) {
      res.stream.destroy();
      failReply(request, reply, error);
    }
  };
  return reply.from(rewrite?.path, hooks);
}

/** Location and Link headers that lead back into the upstream, renamed for a client that reached it under other names. */
function renameLocations(headers: Record<string, string | string[] | number | undefined>, origin: string, rewrite: UpstreamRewrite): void {
  const from = { origin, path: rewrite.path, query: rewrite.query };
  const location = headers.location;
  if (typeof location === 'string') headers.location = clientLocation(location, from, rewrite.names, rewrite.clientQuery);
  const link = headers.link;
  if (typeof link === 'string') headers.link = clientLink(link, from, rewrite.names, rewrite.clientQuery);
  else if (Array.isArray(link)) headers.link = link.map((value) => clientLink(value, from, rewrite.names, rewrite.clientQuery));
}

/**
 * An upstream's challenge as the client may see it: none for a client Layover authenticated (it
 * holds Layover's credentials, which must never reach the upstream's realm); pointing at Layover's
 * token endpoint on the name the client used where Layover authorizes the registry (`managed`) or
 * the realm is out of the client's reach (UpstreamAuth.namesHiddenRealm); otherwise as it came.
 */
export function challengeForClient(request: FastifyRequest, target: UpstreamTarget, auth: UpstreamAuth | undefined, challenge: string | string[], managed: boolean): string | string[] | undefined {
  if (identityOf(request) !== undefined) return undefined;
  if (!auth || !(managed || auth.namesHiddenRealm(target.origin, challenge))) return challenge;
  const rewrite = target.rewrite;
  return rewrite
    ? auth.rewriteChallenges(challenge, { realm: rewrite.tokenRealm, scope: (scope) => rewrite.names.scopesToClient(scope) })
    : auth.rewriteChallenges(challenge, `https://${request.host}`);
}

/**
 * A 401 or 403 from the upstream. A 401 to Layover's own authorization is retried once with fresh
 * authorization (stale token, rotated helper credential, changed scheme); otherwise the client
 * gets an OCI error naming the registry, with the upstream's challenge so it can authenticate.
 */
async function refuse(request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, options: UpstreamRequestOptions, authorization: Authorization, res: UpstreamResponse): Promise<void> {
  const scope = options.auth!;
  const method = options.method ?? request.method;
  const idempotent = method === 'GET' || method === 'HEAD';
  if (res.statusCode === 401 && authorization.managed && !authorization.retried && idempotent && scope.auth.rejected(target.origin, authorization.grant, res.headers['www-authenticate'])) {
    discardBody(res.stream);
    clearUpstreamHeaders(reply);
    return authorizeAndSend(request, reply, target, options, scope, true);
  }
  const body = await readLimited(res.stream, 64 * 1024, WHOLE_BODY_DEADLINE_MS).catch(() => null);
  // The challenge as rewriteHeaders left it (challengeForClient: none for Layover's own clients).
  const challenge = reply.getHeader('www-authenticate');
  const refusal = upstreamRefusal(res.statusCode as 401 | 403, target.registry, scope.repository, authorization.grant, { upstream: upstreamErrors(body) }, request.log);
  const headers: Record<string, string | string[]> = {};
  // Several challenges stay several headers: Docker's parser reads one challenge per header.
  if (challenge !== undefined) headers['www-authenticate'] = Array.isArray(challenge) ? challenge : String(challenge);
  void reply.send(new OciError(refusal.code, refusal.message, refusal.detail, { status: refusal.status, headers }));
}

/** Headers of one connection (RFC 9110 §7.6.1), and those the upstream's Connection header names: not the client's. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'transfer-encoding', 'upgrade', 'te', 'trailer'];
/**
 * Cookies are the upstream's state with Layover, never a client's: passed on, one client's session
 * (a load balancer's, a CDN's) would reach every client behind Layover, and a cached answer never carries them.
 */
const UPSTREAM_STATE = ['set-cookie', 'set-cookie2'];

/**
 * The upstream's headers without its hop-by-hop ones and its cookies: an upstream's
 * `Connection: close` (nginx in front of a registry sends it) must not close the client's
 * connection, nor its keep-alive parameters override ours. A Retry-After that is neither
 * delta-seconds nor an HTTP date is dropped too, as on the answers Layover writes itself. The body,
 * the upstream's, gets UPSTREAM_BODY_HEADERS.
 */
function withoutHopByHop<T extends Record<string, unknown>>(headers: T): T {
  const out: Record<string, unknown> = { ...headers };
  // Two Connection headers arrive as an array: each names headers to drop.
  const connection = headers.connection;
  const named = (Array.isArray(connection) ? connection : [connection]).flatMap((value: unknown) => (typeof value === 'string' ? value.split(',').map((n) => n.trim().toLowerCase()) : []));
  for (const name of [...HOP_BY_HOP, ...UPSTREAM_STATE, ...named]) delete out[name];
  if (out['retry-after'] !== undefined && retryAfterSeconds(out['retry-after'] as string | string[], Date.now()) === null) delete out['retry-after'];
  Object.assign(out, UPSTREAM_BODY_HEADERS);
  return out as T;
}

/** Drops the headers reply-from copied from an upstream answer we are not going to send. */
export function clearUpstreamHeaders(reply: FastifyReply): void {
  clearReplyHeaders(reply);
}
