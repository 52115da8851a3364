import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import type { UpstreamDispatcher } from '../upstream/upstream-agent.js';
import type { UpstreamTarget } from './upstream-target.js';

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
}

/**
 * Sends the client's request to the upstream registry with reply-from and
 * streams the answer back (status, headers and auth challenges unchanged)
 * unless `onResponse` takes over. No retries: a failing upstream must fail
 * fast so a cached copy can be served instead.
 */
export function forwardUpstream(request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, options: UpstreamRequestOptions = {}): FastifyReply {
  const hooks: FastifyReplyFromHooks = {
    getUpstream: () => target.origin,
    // No retries (a failing upstream must fail fast so a cached copy can be
    // served), except once over h2 for an origin that answered 426.
    retryDelay: ({ res, attempt }) => {
      if (res?.statusCode !== 426 || attempt > 0 || !request.server.upstream.upgradeOn426(target.origin)) return null;
      (res as unknown as UpstreamResponse).stream.resume();
      request.log.info({ registry: target.registry }, 'upstream requires HTTP/2: switching to h2');
      return 1;
    },
    rewriteRequestHeaders: (_request, headers) => {
      const out = { ...headers };
      if (options.identity) out['accept-encoding'] = 'identity';
      return out;
    },
    onError: (replyFrom, { error }) => {
      const cause = (error as { cause?: Error }).cause ?? error;
      request.log.warn({ registry: target.registry, err: cause }, 'upstream unreachable');
      if (options.onUnreachable) return options.onUnreachable(cause);
      void replyFrom.send(unreachable(target, cause));
    },
  };
  if (options.method) hooks.method = options.method;
  hooks.onResponse = (_request, replyFrom, raw) => {
    const res = raw as unknown as UpstreamResponse;
    // Docker Hub counts pulls; keep its quota in the log line (the headers also reach the client).
    const limit = res.headers['ratelimit-remaining'];
    if (typeof limit === 'string') annotateRequestLog(request, { ratelimitRemaining: limit.split(';')[0] });
    if (options.onResponse) options.onResponse(res);
    else void replyFrom.send(res.stream);
  };
  return reply.from(undefined, hooks);
}

/** The client's error when an upstream cannot be reached (DNS, connect, timeout): 503 UNAVAILABLE naming it. */
export function unreachable(target: UpstreamTarget, cause: Error): OciError {
  return new OciError('UNAVAILABLE', `upstream registry ${target.registry} is unreachable`, { reason: (cause as NodeJS.ErrnoException).code ?? cause.message }, { cause });
}

/** Drops the headers reply-from copied from an upstream answer we are not going to send. */
export function clearUpstreamHeaders(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
}
