/**
 * Why Layover could not get upstream authorization ready: the token endpoint or registry was
 * unreachable (`unreachable`: the route may serve a cached copy), or refused the configured
 * credential (`rejected`, with its status), or a credential helper failed (`helper`), or the
 * registry named a token realm Layover does not fetch from (`refused`: not https, or at an address
 * the AddressPolicy forbids), or answered what is not a token (`invalid`). Messages
 * name the registry and the credential by name, never a secret.
 */
export class UpstreamAuthError extends Error {
  override readonly name = 'UpstreamAuthError';

  constructor(
    readonly kind: 'unreachable' | 'rejected' | 'helper' | 'invalid' | 'refused',
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
