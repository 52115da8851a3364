import type { FastifyRequest } from 'fastify';
import type { RouteRefusal, ClientTokenRequest, Routing } from './request-target.js';

/**
 * Each request's routing, as registerRequestTarget's onRequest hook decided it: kept apart from the
 * routing itself so that the request log and metrics read it without importing the routes.
 */
const routings = new WeakMap<FastifyRequest, Routing>();

export function setRequestRouting(request: FastifyRequest, routing: Routing): void {
  routings.set(request, routing);
}

/** The routing of a request, as the onRequest hook of registerRequestTarget decided it. */
export function requestTargetOf(request: FastifyRequest): Routing | undefined {
  return routings.get(request);
}

export const isRefusal = (routing: Routing): routing is RouteRefusal => 'refusal' in routing;
export const isClientTokenRequest = (routing: Routing): routing is ClientTokenRequest => 'tokenSite' in routing;
