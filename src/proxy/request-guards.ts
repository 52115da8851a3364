import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import { writeOciError } from './error-handler.js';

/** Why a request head was refused (the `refused` field of its log line). */
export type RefusalReason = 'duplicate-host' | 'invalid-host' | 'authority-mismatch' | 'invalid-target' | 'invalid-transfer-encoding';

export type RequestHeadVerdict =
  /** `url` is set when an absolute-form target was reduced to the origin form the routes expect. */
  | { ok: true; url?: string }
  | { ok: false; reason: RefusalReason; message: string };

/** A DNS name, an IPv4 address or a bracketed IPv6 literal, with an optional port; or empty (HTTP/1.0). */
const HOST_VALUE = /^(?:[A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const ABSOLUTE_FORM = /^(https?):\/\//i;
const DEFAULT_PORTS: Record<string, string> = { http: ':80', https: ':443' };

const refuse = (reason: RefusalReason, message: string): RequestHeadVerdict => ({ ok: false, reason, message });

/** Lower case, no trailing dot, no port when it is the scheme's default. */
function normalAuthority(authority: string, scheme: string): string {
  let value = authority.toLowerCase();
  const port = DEFAULT_PORTS[scheme];
  if (port && value.endsWith(port)) value = value.slice(0, -port.length);
  return value.endsWith('.') ? value.slice(0, -1) : value;
}

/**
 * Checks the parts of a request head that name where the request goes, and its framing.
 *
 * Node keeps the first of two Host headers and fastify prefers `host` over HTTP/2's `:authority`,
 * while an upstream, a log reader or a proxy in front may read the other one: RFC 9112 §3.2 requires
 * a 400 for more than one Host, RFC 9113 §8.3.1 lets a server treat a disagreeing pair as malformed.
 * An absolute-form target (`GET https://other.host/v2/ HTTP/1.1`) must name the Host (RFC 9112
 * §3.2.2); it is then reduced to its path, so the cache, the digest checks and the access policy see
 * the same path as for the usual origin form. Targets that are neither (`*`, `//host/path`,
 * `host:443`) mean nothing to a registry and are refused too. A request whose last transfer coding is
 * not chunked has no knowable length (RFC 9112 §6.3): Node's parser refuses it, but only after it
 * has dispatched the request.
 */
export function checkRequestHead(rawHeaders: readonly string[], url: string): RequestHeadVerdict {
  const hosts: string[] = [];
  const codings: string[] = [];
  let authority: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'host') hosts.push(rawHeaders[i + 1]!);
    else if (name === ':authority') authority = rawHeaders[i + 1]!;
    else if (name === 'transfer-encoding') codings.push(...rawHeaders[i + 1]!.split(',').map((c) => c.trim().toLowerCase()).filter(Boolean));
  }
  if (codings.length > 0 && codings.at(-1) !== 'chunked') {
    return refuse('invalid-transfer-encoding', 'the request body has no knowable length: its last transfer coding is not chunked');
  }
  if (hosts.length > 1) return refuse('duplicate-host', 'more than one Host header');
  const host = hosts[0] ?? authority;
  if (host !== undefined && !HOST_VALUE.test(host)) return refuse('invalid-host', 'the Host header is not a host name with an optional port');
  if (hosts.length === 1 && authority !== undefined && normalAuthority(hosts[0]!, 'https') !== normalAuthority(authority, 'https')) {
    return refuse('authority-mismatch', 'the Host header and :authority name different hosts');
  }

  const absolute = ABSOLUTE_FORM.exec(url);
  if (!absolute) {
    if (url.startsWith('/') && !url.startsWith('//')) return { ok: true };
    return refuse('invalid-target', 'the request target is neither a path nor an absolute URL');
  }
  const scheme = absolute[1]!.toLowerCase();
  const rest = url.slice(absolute[0].length);
  const end = rest.search(/[/?]/);
  const target = end === -1 ? rest : rest.slice(0, end);
  // The same split as the router's (find-my-way), with no user info, fragment or backslash to read otherwise.
  if (target === '' || /[@#\\]/.test(target) || url.includes('#')) return refuse('invalid-target', 'the request target is not a plain absolute URL');
  if (host === undefined || normalAuthority(target, scheme) !== normalAuthority(host, scheme)) {
    return refuse('authority-mismatch', 'the absolute request target names another host than the Host header');
  }
  const path = end === -1 ? '/' : rest[end] === '?' ? `/${rest.slice(end)}` : rest.slice(end);
  if (path.startsWith('//')) return refuse('invalid-target', 'the request target is neither a path nor an absolute URL');
  return { ok: true, url: path };
}

/**
 * Registers checkRequestHead as the first onRequest hook of `app`: a refused request gets 400 with
 * an OCI error body and the connection is closed, before client authentication, the cache or an
 * upstream see it.
 */
export function registerRequestGuards(app: FastifyInstance): void {
  // A callback hook: an async one costs every request a promise and a turn of the microtask queue.
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    const verdict = checkRequestHead(request.raw.rawHeaders, request.raw.url ?? '');
    if (verdict.ok) {
      if (verdict.url !== undefined) request.raw.url = verdict.url;
      return done();
    }
    annotateRequestLog(request, { refused: verdict.reason });
    // HTTP/2 has no Connection header: the stream ends with the answer, the session lives on.
    const headers: Record<string, string> = request.raw.httpVersionMajor < 2 ? { connection: 'close' } : {};
    const error = new OciError('UNSUPPORTED', verdict.message, undefined, { status: 400, headers });
    if (verdict.reason !== 'invalid-transfer-encoding') return done(error);
    // Hijacked: fastify runs no further hook or route for it.
    handOverToParser(reply, error);
    done();
  });
}

/**
 * Node's parser rejects the body of this request right after the request event, and fastify's
 * client-error handler then writes its own 400 on the raw socket and destroys it: an answer from
 * here would make two responses. So the request stops here without one, and only if the parser has
 * not closed the connection by the next turn of the event loop does the OCI 400 go out instead.
 */
function handOverToParser(reply: FastifyReply, error: OciError): FastifyReply {
  reply.hijack();
  setImmediate(() => {
    if (reply.raw.socket?.destroyed !== false || reply.raw.headersSent) return;
    writeOciError(reply.raw, error);
  });
  return reply;
}
