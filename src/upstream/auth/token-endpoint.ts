import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../../log/request-log.js';
import { UPSTREAM_BODY_HEADERS } from '../../proxy/upstream-body-headers.js';
import type { UpstreamTarget } from '../../proxy/upstream-target.js';
import { OciError } from '../../registry/oci-errors.js';
import { readLimited } from '../read-limited.js';
import { UpstreamAuthError } from './auth-error.js';
import { authFailure } from './auth-failure.js';
import { clientBringsCredentials, type UpstreamAuth } from './upstream-auth.js';

/** A token request is a handful of fields; anything larger is not one. */
const FORM_LIMIT_BYTES = 16 * 1024;

/**
 * GET/POST `/_layover/token` on a registry name: the realm Layover puts in that registry's Bearer
 * challenges. A client with credentials of its own gets the real realm's answer (so its own
 * account is used), one without gets Layover's placeholder token (so Layover's is). The answer
 * carries tokens: it is never cached and never logged.
 *
 * Where the client knows the registry under other names (a mirror path prefix, a custom domain:
 * `target.rewrite`), the scopes it asks for are renamed to the upstream's before they are relayed,
 * and scopes outside the mapping are dropped; containerd's `ns` is not relayed.
 */
export async function answerTokenRequest(auth: UpstreamAuth, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget): Promise<FastifyReply> {
  const rawQuery = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
  const rewrite = target.rewrite;
  const query = rewrite ? upstreamTokenQuery(rawQuery, rewrite.scopesToUpstream) : rawQuery;
  const contentType = request.headers['content-type'];
  const own = request.method === 'POST' || clientBringsCredentials(request.headers.authorization);
  annotateRequestLog(request, { registry: target.registry, tokenRequest: own ? 'relayed' : 'placeholder' });
  if (request.method !== 'GET' && request.method !== 'POST') throw new OciError('UNSUPPORTED', 'the token endpoint takes GET and POST');
  let answer: Awaited<ReturnType<UpstreamAuth['tokenEndpoint']>>;
  try {
    const form = request.method === 'POST' ? await upstreamTokenForm(request.body as Readable, rewrite?.scopesToUpstream) : undefined;
    const relayed = {
      method: request.method,
      query,
      ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
      ...(typeof contentType === 'string' ? { contentType } : {}),
      ...(form ? { body: form } : {}),
    };
    answer = await auth.tokenEndpoint(target.origin, relayed, request.log);
  } catch (error) {
    throw error instanceof UpstreamAuthError ? authFailure(error, target.registry) : error;
  }
  return reply.code(answer.status).header('content-type', answer.contentType).headers(UPSTREAM_BODY_HEADERS).header('cache-control', 'no-store').send(answer.body);
}

/** The query relayed upstream: no `ns`, scopes in upstream names. */
function upstreamTokenQuery(query: string, toUpstream: (scope: string) => string): string {
  const params = new URLSearchParams(query);
  params.delete('ns');
  const scopes = params.getAll('scope').map(toUpstream).filter((scope) => scope !== '');
  params.delete('scope');
  for (const scope of scopes) params.append('scope', scope);
  return params.toString();
}

/** A POSTed OAuth2 form, with its `scope` renamed where names differ upstream (bounded: it is read whole then). */
async function upstreamTokenForm(body: Readable, toUpstream: ((scope: string) => string) | undefined): Promise<Readable> {
  if (!toUpstream) return body;
  const bytes = await readLimited(body, FORM_LIMIT_BYTES);
  if (!bytes) throw new OciError('SIZE_INVALID', 'a token request is a few fields, not this much');
  const form = new URLSearchParams(bytes.toString('utf8'));
  const scope = form.get('scope');
  if (scope !== null) form.set('scope', toUpstream(scope));
  return Readable.from([Buffer.from(form.toString())]);
}
