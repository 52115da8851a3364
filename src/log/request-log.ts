import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CompletedRequest, Metrics } from '../metrics/metrics.js';
import { bindRequestMetrics } from '../metrics/request-metrics.js';
import { requestOutcome, type RequestOutcome } from '../metrics/request-outcome.js';
import { redactUrl } from './redact-url.js';
import { writeRequestLine } from './request-line.js';

/** Fields a route adds to its request's log line: cache, registry, repo, digest, bytes. */
export type RequestLogFields = Record<string, string | number | boolean | undefined>;

const fields = new WeakMap<FastifyRequest, RequestLogFields>();

export function annotateRequestLog(request: FastifyRequest, extra: RequestLogFields): void {
  // One object per request, added to in place: a hit is annotated four or five times.
  const annotated = fields.get(request);
  if (annotated) Object.assign(annotated, extra);
  else fields.set(request, { ...extra });
}

/** A completed request's log line (requestLine). */
export type CompletedLine = RequestLogFields & { status: number; ms: number };

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
    const annotated = fields.get(request) ?? {};
    const line = requestLine(request.method, request.host, request.url, reply.statusCode, reply.getHeader('content-length'), reply.elapsedTime, annotated);
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else writeRequestLine(reply.log, line);
    if (this.metrics) recordCompleted(this.metrics, this.listener, line, annotated, requestOutcome(request, reply, annotated), error);
  }
}

/**
 * A request's log line: method, host, redacted URL, status, bytes, ms, then what the routes annotated
 * (a `bytes` annotation, 0 for a HEAD, replaces the length in place). Built the same way for every
 * request, whichever path answered it (src/proxy/hit-path.ts answers some hits without fastify).
 */
export function requestLine(method: string, host: string | undefined, url: string, status: number, contentLength: unknown, elapsedMs: number, annotated: RequestLogFields): CompletedLine {
  const length = Number(contentLength);
  return {
    method,
    host,
    url: redactUrl(url),
    status,
    bytes: Number.isFinite(length) ? length : undefined,
    ms: Math.round(elapsedMs * 10) / 10,
    ...annotated,
  };
}

/** Counts a completed request (its line and outcome) in /metrics and the status page's history. */
export function recordCompleted(metrics: Metrics, listener: string, line: CompletedLine, annotated: RequestLogFields, outcome: RequestOutcome, error: Error | null | undefined): void {
  metrics.recordRequest(completedRequest(metrics, listener, line, annotated, outcome, error));
}

/** What /metrics and the status page count of a completed request (its line and outcome). */
export function completedRequest(metrics: Metrics, listener: string, line: Pick<CompletedLine, 'status'>, annotated: RequestLogFields, outcome: RequestOutcome, error: Error | null | undefined): CompletedRequest {
  return {
    listener,
    route: outcome.route,
    registry: typeof annotated.registry === 'string' ? metrics.registryLabel(annotated.registry) : undefined,
    repository: typeof annotated.repo === 'string' ? annotated.repo : undefined,
    cache: outcome.cache === '' ? undefined : outcome.cache,
    status: line.status,
    bytes: outcome.bytes,
    ...(outcome.source ? { source: outcome.source } : {}),
    error: error?.message ?? answeredError(annotated),
  };
}
