/**
 * Why Layover could not get upstream authorization ready: the token endpoint or registry was
 * unreachable (`unreachable`: the route may serve a cached copy), or refused the configured
 * credential (`rejected`, with its status), or a credential helper failed (`helper`). Messages
 * name the registry and the credential by name, never a secret.
 */
export class UpstreamAuthError extends Error {
  override readonly name = 'UpstreamAuthError';

  constructor(
    readonly kind: 'unreachable' | 'rejected' | 'helper' | 'invalid',
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
