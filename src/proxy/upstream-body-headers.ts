/**
 * Headers for an answer whose body the upstream wrote (an error page, a token realm's answer, a
 * catalog) and Layover passes on from its own origin: `docker.proxy`, every registry's in mirror
 * mode, which also serves the status page and the token service. A browser that opens such a URL
 * must not run what a hostile upstream put there, whatever Content-Type it claimed: no sniffing, and
 * a sandbox with nothing allowed (no scripts, a unique origin).
 */
export const UPSTREAM_BODY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
};
