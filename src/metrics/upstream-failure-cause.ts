import { connectFailures } from '../proxy/upstream-unreachable.js';

/**
 * The `cause` label of layover_upstream_errors_total for a request that got no answer; `digest`
 * for an answer whose bytes did not match their digest (counted where the fill learns it).
 */
export type UpstreamFailureCause = 'dns' | 'connect' | 'tls' | 'timeout' | 'reset' | 'digest' | 'other';

const CAUSES: Record<string, UpstreamFailureCause> = {
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
  ENODATA: 'dns',
  ESERVFAIL: 'dns',
  ECONNREFUSED: 'connect',
  EHOSTUNREACH: 'connect',
  ENETUNREACH: 'connect',
  EADDRNOTAVAIL: 'connect',
  ETIMEDOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  UND_ERR_SOCKET: 'reset',
  UND_ERR_CLOSED: 'reset',
};

const TLS_CODE = /CERT|TLS|SSL|SIGNATURE|HOSTNAME|ALTNAME/;

/**
 * Why an upstream request failed, in the few words a dashboard groups by. A name that could not be
 * resolved is `dns` whatever the resolver's own socket reported (a resolver that refuses the
 * connection wraps ECONNREFUSED in EAI_AGAIN); otherwise the most telling of its attempts (happy
 * eyeballs tries several addresses), as the client's 503 names it.
 */
export function upstreamFailureCause(error: unknown): UpstreamFailureCause {
  const codes = codesOf(error);
  if (codes.some((code) => CAUSES[code] === 'dns')) return 'dns';
  const telling = connectFailures(error)[0]?.code;
  for (const code of telling === undefined ? codes : [telling, ...codes]) {
    const known = CAUSES[code];
    if (known) return known;
    if (TLS_CODE.test(code)) return 'tls';
  }
  return 'other';
}

/** Every errno-style code along the error's causes and, for happy eyeballs, its attempts. */
function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown, depth: number): void => {
    if (!(value instanceof Error) || seen.has(value) || depth > 8) return;
    seen.add(value);
    const code = (value as NodeJS.ErrnoException).code;
    if (typeof code === 'string') codes.push(code);
    if (value instanceof AggregateError) for (const inner of value.errors) visit(inner, depth + 1);
    visit(value.cause, depth + 1);
  };
  visit(error, 0);
  return codes;
}
