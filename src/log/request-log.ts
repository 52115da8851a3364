import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Metrics } from '../metrics/metrics.js';
import { redactUrl } from './redact-url.js';

/** Fields a route adds to its request's log line: cache, registry, repo, digest, bytes. */
export type RequestLogFields = Record<string, string | number | boolean | undefined>;

const fields = new WeakMap<FastifyRequest, RequestLogFields>();

export function annotateRequestLog(request: FastifyRequest, extra: RequestLogFields): void {
  fields.set(request, { ...fields.get(request), ...extra });
}

/**
 * One log line per request, written when it completes, instead of fastify's
 * two (incoming, completed): method, host, redacted URL, status, bytes, ms and
 * whatever the route annotated.
 */
export class RequestLogController extends LogController {
  /** `listener`: the listener's name in /metrics; `metrics`: counts every completed request. */
  constructor(
    readonly listener: string,
    readonly metrics?: Metrics,
  ) {
    super();
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const length = Number(reply.getHeader('content-length'));
    const line: RequestLogFields & { ms: number } = {
      method: request.method,
      host: request.host,
      url: redactUrl(request.url),
      status: reply.statusCode,
      bytes: Number.isFinite(length) ? length : undefined,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...fields.get(request),
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request');
    this.metrics?.recordRequest({
      listener: this.listener,
      route: typeof line.route === 'string' ? line.route : 'other',
      registry: typeof line.registry === 'string' ? line.registry : undefined,
      repository: typeof line.repo === 'string' ? line.repo : undefined,
      cache: typeof line.cache === 'string' ? line.cache : undefined,
      status: reply.statusCode,
      bytes: typeof line.bytes === 'number' ? line.bytes : 0,
      ms: line.ms,
      error: error?.message,
    });
  }
}
