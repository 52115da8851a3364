import type { FastifyRequest } from 'fastify';
import type { ClientIdentity } from './authenticator.js';

const identities = new WeakMap<FastifyRequest['raw'], ClientIdentity>();

/** The client-auth hook let this request in as `identity`. */
export function rememberIdentity(request: FastifyRequest, identity: ClientIdentity): void {
  identities.set(request.raw, identity);
}

/**
 * Who Layover authenticated this request as, or undefined when Layover does not authenticate
 * clients. Such a client's credentials are Layover's: an upstream challenge must never reach it,
 * or it would present them at the upstream's token realm.
 */
export function identityOf(request: FastifyRequest): ClientIdentity | undefined {
  return identities.get(request.raw);
}
