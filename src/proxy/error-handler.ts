import type { FastifyInstance, FastifyReply } from 'fastify';
import { OciError, type OciErrorCode } from '../registry/oci-errors.js';

// Statuses fastify itself raises (bad body, too large, bad header) and their nearest OCI code.
const CODE_BY_STATUS: Record<number, OciErrorCode> = { 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NOT_FOUND', 413: 'SIZE_INVALID', 416: 'RANGE_INVALID', 429: 'TOOMANYREQUESTS' };

/**
 * The one writer of error answers: status, the error's own headers (a challenge, `Retry-After`),
 * and the OCI body. Headers copied from an upstream answer (its length, its type, its cookies)
 * do not describe this body and are dropped first.
 */
export function sendOciError(reply: FastifyReply, error: OciError): FastifyReply {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  reply.code(error.status).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0');
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply.send(JSON.stringify(error.toBody()));
}

/** Any thrown value as the OciError it is answered with: fastify's own 4xx keep their status; the rest is 500 UNKNOWN. */
export function asOciError(error: unknown): { oci: OciError; unexpected: boolean } {
  if (error instanceof OciError) return { oci: error, unexpected: false };
  const status = (error as { statusCode?: number } | null)?.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return { oci: new OciError(CODE_BY_STATUS[status] ?? 'UNSUPPORTED', (error as Error).message, undefined, { status, cause: error }), unexpected: false };
  }
  return { oci: new OciError('UNKNOWN', 'internal error', undefined, { cause: error }), unexpected: true };
}

/**
 * Every error and every unknown route leaves in the OCI error format, through sendOciError.
 * Anything unexpected is a 500 UNKNOWN whose message is not shown to the client but is logged.
 */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const { oci, unexpected } = asOciError(error);
    if (unexpected) request.log.error({ err: error }, 'unhandled error');
    return sendOciError(reply, oci);
  });
  app.setNotFoundHandler((request, reply) => sendOciError(reply, new OciError('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`)));
}
