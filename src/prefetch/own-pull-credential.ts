import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ClientIdentity } from '../client-auth/authenticator.js';

/**
 * With client authentication on, Layover's own pulls (prefetch, run in process through the TLS
 * listener's routes) must pass the client-auth hook like a client's. They carry this credential: 32
 * random bytes made at start, never written anywhere and never sent over a socket (the hook removes
 * every request's Authorization before anything is forwarded), so no client can present it.
 */
const SECRET = randomBytes(32).toString('base64url');
const SCHEME = 'Layover-Own-Pull';

/** The User-Agent of Layover's own pulls, by which /metrics and the status page tell them from clients'. */
export const OWN_PULL_USER_AGENT = 'layover-prefetch';

/** The Authorization header of Layover's own pulls. */
export const OWN_PULL_AUTHORIZATION = `${SCHEME} ${SECRET}`;

/** Who Layover's own pulls are, in log lines and to the routes (a client Layover authenticated). */
export const OWN_PULL_IDENTITY: ClientIdentity = { user: 'layover (prefetch)', groups: [] };

/** True only for the exact credential of this process (compared in constant time). */
export function isOwnPull(authorization: string | undefined): boolean {
  if (authorization === undefined) return false;
  const given = Buffer.from(authorization);
  const expected = Buffer.from(OWN_PULL_AUTHORIZATION);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
