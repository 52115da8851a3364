/** The OCI distribution error codes Layover answers with, and their HTTP status. */
export const OCI_ERRORS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  RANGE_INVALID: 416,
  UNAUTHORIZED: 401,
  DENIED: 403,
  NOT_FOUND: 404,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
  UNAVAILABLE: 503,
} as const;

export type OciErrorCode = keyof typeof OCI_ERRORS;

export interface OciErrorOptions extends ErrorOptions {
  /** An upstream's fault keeps the code that describes it but is a 502 (Bad Gateway), not the client's 4xx. */
  status?: number;
  /** Headers the answer needs: a challenge (`www-authenticate`, one value per challenge), `retry-after`, `connection: close`. */
  headers?: Readonly<Record<string, string | readonly string[]>>;
}

/**
 * An error that becomes `{"errors":[{"code","message","detail"}]}` with the code's status and its
 * own headers. Thrown (or passed to `reply.send`) anywhere on a registry route; the one writer in
 * src/proxy/error-handler.ts formats it.
 */
export class OciError extends Error {
  override readonly name = 'OciError';
  readonly status: number;
  readonly headers: Readonly<Record<string, string | readonly string[]>>;

  constructor(
    readonly code: OciErrorCode,
    message: string,
    readonly detail?: unknown,
    options?: OciErrorOptions,
  ) {
    super(message, options);
    this.status = options?.status ?? OCI_ERRORS[code];
    this.headers = options?.headers ?? {};
  }

  toBody(): { errors: { code: OciErrorCode; message: string; detail?: unknown }[] } {
    const entry = this.detail === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, detail: this.detail };
    return { errors: [entry] };
  }
}
