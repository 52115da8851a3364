import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../../log/request-log.js';
import type { UpstreamTarget } from '../../proxy/upstream-target.js';
import { OciError } from '../../registry/oci-errors.js';
import { UpstreamAuthError } from './auth-error.js';
import { authFailure } from './auth-failure.js';
import { clientBringsCredentials, type UpstreamAuth } from './upstream-auth.js';

/**
 * GET/POST `/_layover/token` on a registry name: the realm Layover puts in that registry's Bearer
 * challenges. A client with credentials of its own gets the real realm's answer (so its own
 * account is used), one without gets Layover's placeholder token (so Layover's is). The answer
 * carries tokens: it is never cached and never logged.
 */
export function answerTokenRequest(auth: UpstreamAuth, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget): FastifyReply {
  const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
  const contentType = request.headers['content-type'];
  const own = request.method === 'POST' || clientBringsCredentials(request.headers.authorization);
  annotateRequestLog(request, { registry: target.registry, tokenRequest: own ? 'relayed' : 'placeholder' });
  if (request.method !== 'GET' && request.method !== 'POST') {
    void reply.send(new OciError('UNSUPPORTED', 'the token endpoint takes GET and POST'));
    return reply;
  }
  auth
    .tokenEndpoint(target.origin, {
      method: request.method,
      query,
      ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
      ...(typeof contentType === 'string' ? { contentType } : {}),
      ...(request.method === 'POST' ? { body: request.body as Readable } : {}),
    })
    .then(
      (answer) => void reply.code(answer.status).header('content-type', answer.contentType).header('cache-control', 'no-store').send(answer.body),
      (error: unknown) => void reply.send(error instanceof UpstreamAuthError ? authFailure(error, target.registry) : error),
    );
  return reply;
}
