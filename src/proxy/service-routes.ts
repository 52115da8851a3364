import type { FastifyInstance } from 'fastify';
import type { ServingState } from '../net/serving-state.js';
import { setupRoutes, type SetupRoutesOptions } from '../setup/setup-routes.js';

export interface ServiceRoutesOptions {
  caCertPem: string;
  /** What /readyz reports. */
  state: ServingState;
  /** On the TLS listener, only for docker.proxy and bare addresses: every other name belongs to its registry. */
  hosts?: RegExp;
  /** The /setup/* scripts; left out, there are none. */
  setup?: Omit<SetupRoutesOptions, 'caCertPem' | 'constraints'>;
}

/** docker.proxy, localhost or an IP literal, with an optional port. */
export const SERVICE_HOSTS = /^(docker\.proxy|localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])(:\d+)?$/i;

/**
 * Routes for operators and node setup, on every listener: the CA certificate, liveness and readiness,
 * and the setup scripts. The probes are unauthenticated and say nothing but the phase.
 */
export async function serviceRoutes(app: FastifyInstance, { caCertPem, state, hosts, setup }: ServiceRoutesOptions): Promise<void> {
  const options = hosts ? { constraints: { host: hosts } } : {};
  app.get('/ca.crt', options, async (_request, reply) =>
    reply.header('content-type', 'application/x-x509-ca-cert').header('content-disposition', 'inline; filename="layover-ca.crt"').send(caCertPem),
  );
  // Liveness: an answer at all means the event loop turns. It stays 200 while stopping, so that an
  // orchestrator does not kill a replica that is finishing its responses.
  app.get('/healthz', options, async () => ({ status: 'ok' }));
  app.get('/livez', options, async () => ({ status: 'ok' }));
  // Readiness: 503 before every listener is up and from the first moment of a stop.
  app.get('/readyz', options, async (_request, reply) => reply.code(state.ready ? 200 : 503).send({ status: state.phase }));
  if (setup) await setupRoutes(app, { ...setup, caCertPem, ...options });
}
