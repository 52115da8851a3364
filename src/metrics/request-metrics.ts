import type { FastifyRequest } from 'fastify';
import type { Metrics } from './metrics.js';

const bound = new WeakMap<FastifyRequest, Metrics>();

/** Remembers the app's Metrics for `request` (the request log does it as each request arrives). */
export function bindRequestMetrics(request: FastifyRequest, metrics: Metrics): void {
  bound.set(request, metrics);
}

/**
 * The Metrics of the app `request` arrived at: code that sees only the request (the upstream
 * request, deep under the routes) counts into the right app's registry, so that two apps in one
 * process (tests, replicas) never count into each other's series.
 */
export function requestMetrics(request: FastifyRequest): Metrics | undefined {
  return bound.get(request);
}
