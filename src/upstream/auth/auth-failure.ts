import type { FastifyBaseLogger } from 'fastify';
import { OciError } from '../../registry/oci-errors.js';
import type { RepositoryName } from '../../registry/repository-name.js';
import type { UpstreamAuthError } from './auth-error.js';
import type { AuthGrant } from './upstream-auth.js';

/** The upstream's own error entries (code and message only), kept as detail for the client. */
export function upstreamErrors(body: Buffer | null): Array<{ code?: unknown; message?: unknown }> | undefined {
  if (!body) return undefined;
  try {
    const errors = (JSON.parse(body.toString('utf8')) as { errors?: unknown }).errors;
    return Array.isArray(errors) ? errors.slice(0, 5).map((e: { code?: unknown; message?: unknown }) => ({ code: e?.code, message: e?.message })) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The client's error when the upstream answered 401 or 403: OCI UNAUTHORIZED or DENIED naming the
 * registry and whose credentials were refused (Layover's, the client's, or none). A refused
 * configured credential is logged by name.
 */
export function upstreamRefusal(
  status: 401 | 403,
  registry: string,
  repository: RepositoryName | null,
  grant: AuthGrant | null,
  detail: { upstream?: unknown },
  log: Pick<FastifyBaseLogger, 'warn'>,
): OciError {
  const what = repository ? `repository ${repository}` : 'its API';
  const code = status === 401 ? 'UNAUTHORIZED' : 'DENIED';
  let message: string;
  if (grant?.credential) {
    log.warn({ registry, repo: repository ?? undefined, status, credential: grant.credential }, 'upstream refused the configured credential');
    message =
      status === 401
        ? `${registry} did not accept the credentials Layover holds for ${what}`
        : `${registry} denied the credentials Layover holds access to ${what}`;
  } else if (grant?.clientOwn) {
    message = status === 401 ? `${registry} did not accept the client's credentials for ${what}` : `${registry} denied the client's credentials access to ${what}`;
  } else {
    message =
      status === 401
        ? `${registry} requires authentication for ${what}: the client sent it no credentials and Layover holds none for it (AUTH_REGISTRIES)`
        : `${registry} denied anonymous access to ${what}, and Layover holds no credentials for it (AUTH_REGISTRIES)`;
  }
  return new OciError(code, message, { registry, ...(repository ? { repository } : {}), ...detail });
}

/**
 * The client's error when Layover could not get authorization ready (other than an unreachable
 * upstream). What the upstream got wrong (a refused realm, an answer that is no token) is a 502:
 * the upstream is at fault, not the client's credentials.
 */
export function authFailure(error: UpstreamAuthError, registry: string): OciError {
  switch (error.kind) {
    case 'rejected':
      return new OciError(error.status === 403 ? 'DENIED' : 'UNAUTHORIZED', error.message, { registry }, { cause: error });
    case 'helper':
      return new OciError('UNAUTHORIZED', error.message, { registry }, { cause: error });
    default:
      return new OciError('UNAVAILABLE', `${registry}: ${error.message}`, { registry }, { cause: error, ...(error.kind === 'unreachable' ? {} : { status: 502 }) });
  }
}
