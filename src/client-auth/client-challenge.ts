import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/** Basic is what `docker login`, skopeo `--creds` and podman's authfile answer without a token service. */
export const BASIC_CHALLENGE = 'Basic realm="Layover"';

/** Where CLIENT_AUTH_CHALLENGE=bearer sends clients for a token: docker.proxy, which every client of Layover resolves to it. */
export const TOKEN_REALM = `https://${DOCKER_PROXY_HOST}/token`;

/** What a 401 tells the client to come back with: an action on a repository, or nothing in particular (the ping). */
export interface ChallengeScope {
  repository: string;
  actions: readonly ('pull' | 'push')[];
}

// Registry and repository names cannot hold quotes or backslashes; this keeps it so whatever reaches here.
const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`;

/**
 * The Bearer challenge of the distribution token spec, pointing at Layover's own
 * token service: `service` is the registry name the client used (the token's
 * audience), `scope` what it was trying to do.
 */
export function bearerChallenge(registry: string, scope: ChallengeScope | null): string {
  const parts = [`realm=${quoted(TOKEN_REALM)}`, `service=${quoted(registry)}`];
  if (scope) parts.push(`scope=${quoted(`repository:${scope.repository}:${scope.actions.join(',')}`)}`);
  return `Bearer ${parts.join(',')}`;
}
