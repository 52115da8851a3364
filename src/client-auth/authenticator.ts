/** Who a client is, once Layover has checked its credentials. */
export interface ClientIdentity {
  readonly user: string;
  readonly groups: readonly string[];
  /** When the credential itself stops being valid (a JWT's `exp`, seconds since the epoch): tokens issued for it end no later. */
  readonly expiresAt?: number;
}

/** When a token of Layover's was issued and when it expires (seconds since the epoch). */
export interface TokenLifetime {
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/**
 * Checks a client's `Authorization` header. Resolves null for missing or wrong
 * credentials (the client gets 401) and never rejects for them. When the
 * credentials cannot be checked now (the identity provider or directory is down
 * or too slow), rejects with OciError UNAVAILABLE, so the client gets 503 and
 * retries rather than believing its credentials wrong. Neither an answer nor an
 * error ever carries the secret.
 */
export interface Authenticator {
  /**
   * `source`: who is signing in (signInSource: the client's address, an IPv6 client's /56), so
   * that where checks are costly and queued (bcrypt) each client takes its turn, and one sending
   * wrong passwords without pause delays only itself.
   */
  authenticate(authorization: string | undefined, source?: string): Promise<ClientIdentity | null>;
  /**
   * Whether `user` may still sign in, asked for a request that carries a token of Layover's
   * instead of credentials: a user removed from the htpasswd file, disabled in the directory or
   * whose static token was removed loses access at once, not when the token expires. Rejects,
   * like authenticate, when it cannot be checked now. `token`: the lifetime of the token asked about.
   */
  stillValid(user: string, token?: TokenLifetime): Promise<boolean>;
}

/** `Basic base64(user:password)` -> its parts; null for anything else (the password may contain ':'). */
export function parseBasic(authorization: string | undefined): { user: string; password: string } | null {
  const match = /^\s*basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(authorization ?? '');
  if (!match) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon === decoded.length - 1) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** `Bearer <token>` -> the token; null for anything else. */
export function parseBearer(authorization: string | undefined): string | null {
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return match ? match[1]! : null;
}
