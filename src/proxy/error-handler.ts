import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError, type OciErrorCode } from '../registry/oci-errors.js';
import { BodyDeadlineError } from '../upstream/read-limited.js';

// Statuses fastify itself raises (bad body, too large, bad header) and their nearest OCI code.
const CODE_BY_STATUS: Record<number, OciErrorCode> = { 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NOT_FOUND', 413: 'SIZE_INVALID', 416: 'RANGE_INVALID', 429: 'TOOMANYREQUESTS' };

type Headers = Record<string, string | readonly string[]>;

/** An error answer as it goes on the wire: the one format every writer below uses. */
export function ociErrorResponse(error: OciError): { status: number; headers: Headers; body: string } {
  const body = JSON.stringify(error.toBody());
  return {
    status: error.status,
    headers: { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0', ...error.headers, 'content-length': String(Buffer.byteLength(body)) },
    body,
  };
}

/**
 * The one writer of error answers: status, the error's own headers (a challenge, `Retry-After`),
 * and the OCI body. Headers copied from an upstream answer (its length, its type, its cookies)
 * do not describe this body and are dropped first.
 */
export function sendOciError(reply: FastifyReply, error: OciError): FastifyReply {
  clearReplyHeaders(reply);
  const { status, headers, body } = ociErrorResponse(error);
  // What the client was told, in the request's log line and the status page's recent errors.
  annotateRequestLog(reply.request, { errorCode: error.code, errorMessage: error.message });
  reply.code(status);
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  return reply.send(body);
}

/**
 * The same answer where there is no reply, only the raw response (a request Node's parser is about
 * to refuse); the connection closes after it.
 */
export function writeOciError(response: ServerResponse, error: OciError): void {
  const { status, headers, body } = ociErrorResponse(error);
  response.writeHead(status, { ...headers, connection: 'close' }).end(body);
}

/** The same answer as raw HTTP/1.1 bytes, for a socket no parser accepted a request on; the connection closes after it. */
export function rawOciError(error: OciError): string {
  const { status, headers, body } = ociErrorResponse(error);
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`];
  for (const [name, value] of Object.entries({ ...headers, connection: 'close' })) {
    for (const one of typeof value === 'string' ? [value] : value) lines.push(`${name}: ${one}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** Any thrown value as the OciError it is answered with: fastify's own 4xx keep their status, an upstream body past its deadline is 504; the rest is 500 UNKNOWN. */
export function asOciError(error: unknown): { oci: OciError; unexpected: boolean } {
  if (error instanceof OciError) return { oci: error, unexpected: false };
  if (error instanceof BodyDeadlineError) return { oci: new OciError('UNKNOWN', error.message, undefined, { status: error.status, cause: error }), unexpected: false };
  const status = (error as { statusCode?: number } | null)?.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return { oci: new OciError(CODE_BY_STATUS[status] ?? 'UNSUPPORTED', (error as Error).message, undefined, { status, cause: error }), unexpected: false };
  }
  return { oci: new OciError('UNKNOWN', 'internal error', undefined, { cause: error }), unexpected: true };
}

/**
 * Where every asynchronous continuation of a route ends when it fails: the error answer (through
 * the error handler) while nothing was sent; once an answer has begun, its body cannot turn into
 * an error, so the failure is logged and the connection cut, which tells the client it is incomplete.
 */
export function failReply(request: FastifyRequest, reply: FastifyReply, error: unknown): void {
  if (!reply.sent && !reply.raw.headersSent) return void reply.send(error);
  request.log.error({ err: error }, 'failed after the answer began');
  reply.raw.destroy();
}

/** Drops every header set so far (copied from an upstream answer that is not going to be sent). */
export function clearReplyHeaders(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  // Removing the upstream's Date also turns off Node's own (OutgoingMessage.removeHeader): every answer has one.
  reply.raw.sendDate = true;
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
