/** Why a fill was dropped; the proxy can map these to log fields or upstream health. */
export type FillFailure =
  | 'digest-mismatch' // the body does not hash to the digest it was fetched under
  | 'size-mismatch' // more bytes than announced
  | 'truncated' // the body ended before the announced size
  | 'source-error' // the upstream body failed (socket reset, premature close)
  | 'stall' // nothing arrived (or nothing could be written) for stallTimeoutMs
  | 'too-large' // the body is longer than the cache may hold (CACHE_MAX_SIZE)
  | 'io-error' // the cache's own disk or index failed
  | 'closed'; // the cache was closed while the fill ran

export class FillError extends Error {
  readonly reason: FillFailure;

  constructor(reason: FillFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FillError';
    this.reason = reason;
  }

  /** Any error met while filling; what is not already a FillError came from the source stream. */
  static from(error: unknown): FillError {
    if (error instanceof FillError) return error;
    return new FillError('source-error', 'the upstream body failed', { cause: error });
  }
}
