import type { FastifyInstance } from 'fastify';
import { OciError, type OciErrorCode } from '../registry/oci-errors.js';

// Statuses fastify itself raises (bad body, too large, bad header) and their nearest OCI code.
const CODE_BY_STATUS: Record<number, OciErrorCode> = { 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NOT_FOUND', 413: 'SIZE_INVALID', 416: 'RANGE_INVALID', 429: 'TOOMANYREQUESTS' };

/**
 * Every error and every unknown route leaves in the OCI error format. Errors
 * fastify raises itself (bad content, body too large) keep their 4xx status;
 * anything else is a 500 UNKNOWN whose message is not shown to the client.
 */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    // Headers copied from an upstream answer (its length, its type) do not describe this body.
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
    let oci: OciError;
    if (error instanceof OciError) oci = error;
    else {
      const status = (error as { statusCode?: number }).statusCode;
      if (status !== undefined && status >= 400 && status < 500) {
        oci = new OciError(CODE_BY_STATUS[status] ?? 'UNSUPPORTED', (error as Error).message);
        return reply.code(status).send(oci.toBody());
      }
      request.log.error({ err: error }, 'unhandled error');
      oci = new OciError('UNKNOWN', 'internal error', undefined, { cause: error });
    }
    return reply.code(oci.status).send(oci.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const oci = new OciError('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`);
    return reply.code(oci.status).send(oci.toBody());
  });
}
