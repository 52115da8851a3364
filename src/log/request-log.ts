import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Metrics } from '../metrics/metrics.js';
import { bindRequestMetrics } from '../metrics/request-metrics.js';
import { requestOutcome } from '../metrics/request-outcome.js';
import { redactUrl } from './redact-url.js';

/** Fields a route adds to its request's log line: cache, registry, repo, digest, bytes. */
export type RequestLogFields = Record<string, string | number | boolean | undefined>;

const fields = new WeakMap<FastifyRequest, RequestLogFields>();

export function annotateRequestLog(request: FastifyRequest, extra: RequestLogFields): void {
  fields.set(request, { ...fields.get(request), ...extra });
}

/** The OCI error the request was answered with (the error writer annotates it), as one line. */
function answeredError(annotated: RequestLogFields): string | undefined {
  const { errorCode, errorMessage } = annotated;
  return typeof errorCode === 'string' ? `${errorCode}${typeof errorMessage === 'string' ? `: ${errorMessage}` : ''}` : undefined;
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

  override incomingRequest(request: FastifyRequest): void {
    // Code that sees only the request (the upstream request) counts into this app's series.
    if (this.metrics) bindRequestMetrics(request, this.metrics);
  }

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
    if (!this.metrics) return;
    const annotated = fields.get(request) ?? {};
    const outcome = requestOutcome(request, reply, annotated);
    this.metrics.recordRequest({
      listener: this.listener,
      route: outcome.route,
      registry: typeof annotated.registry === 'string' ? this.metrics.registryLabel(annotated.registry) : undefined,
      repository: typeof annotated.repo === 'string' ? annotated.repo : undefined,
      cache: outcome.cache === '' ? undefined : outcome.cache,
      status: reply.statusCode,
      bytes: outcome.bytes,
      ...(outcome.source ? { source: outcome.source } : {}),
      ms: line.ms,
      error: error?.message ?? answeredError(annotated),
    });
  }
}
