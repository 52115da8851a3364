import type { FastifyRequest } from 'fastify';
import { identityOf } from '../client-auth/authenticated-requests.js';
import { handsBackPlaceholder, type UpstreamAuth } from '../upstream/auth/upstream-auth.js';
import type { UpstreamTarget } from './upstream-target.js';

/** Who a request goes upstream for: the client's Authorization, and whether Layover let it in (CLIENT_AUTH). */
export interface UpstreamCaller {
  readonly authorization: string | undefined;
  /** The client authenticated to Layover: its Authorization was Layover's and is gone, it has none for the upstream. */
  readonly layoverClient: boolean;
}

export function upstreamCallerOf(request: FastifyRequest): UpstreamCaller {
  return { authorization: request.headers.authorization, layoverClient: identityOf(request) !== undefined };
}

/**
 * Whether Layover authorizes a request to `target` itself (its credential for the repository, else
 * an anonymous token from the registry's realm) rather than passing it on as it came: when it holds
 * a credential that may concern the registry; where names differ upstream (the client cannot use
 * the upstream's challenge); for a client Layover authenticated (no upstream challenge may reach
 * it, so it could never fetch even an anonymous token); and for a client handing back the
 * placeholder Layover's token endpoint gave it.
 */
export function layoverAuthorizes(auth: UpstreamAuth, target: UpstreamTarget, caller: UpstreamCaller): boolean {
  return caller.layoverClient || target.rewrite?.alwaysManaged === true || handsBackPlaceholder(caller.authorization) || auth.concerns(target.origin);
}
