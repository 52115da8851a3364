import { constants } from 'node:os';
import type { AppDependencies } from '../app.js';
import type { LayoverConfig } from '../config/layover-config.js';
import { createDnsServer } from '../dns/layover-dns.js';
import { createLogger } from '../log/logger.js';
import { Metrics } from '../metrics/metrics.js';

/** A stop signal this soon after the first is the same one delivered twice, not a second request. */
const RELAYED_SIGNAL_MS = 1_000;
// Waiting for fills ends this long before the grace does, so the cache still closes in order
// (access times written, failed index writes replayed, the bucket's client closed).
const CLOSE_RESERVE_MS = 2_000;

/** `layover serve`: listen until SIGTERM or SIGINT, then close gracefully; a second signal exits at once. */
export async function serve(config: LayoverConfig): Promise<void> {
  const early = await listenDnsEarly(config);
  const { buildApp, closeApp, listenApp } = await import('../app.js');
  const app = await buildApp(config, early);
  const addresses = await listenApp(app);
  app.logger.info(
    {
      https: `${addresses.https.address}:${addresses.https.port}`,
      http: addresses.http && `${addresses.http.address}:${addresses.http.port}`,
      proxy: addresses.proxy && `${addresses.proxy.address}:${addresses.proxy.port}`,
      connectPolicy: addresses.proxy ? config.connectPolicy : undefined,
      dns: addresses.dns && `${addresses.dns.host}:${addresses.dns.port}`,
      registryPorts: addresses.registryPorts.map((a) => a.port),
      advertise: config.advertise,
      intercepted: config.registries.length,
    },
    'layover is listening',
  );
  // Without a bound, one client that reads slowly, or a fill whose upstream stalls, kept Layover
  // from exiting until the orchestrator's SIGKILL.
  const graceMs = config.timeouts.shutdownGraceMs;
  const drainMs = config.timeouts.shutdownDrainMs;
  let stoppingSince: number | null = null;
  const stop = (signal: NodeJS.Signals): void => {
    if (stoppingSince !== null) {
      // Ctrl-C under `npm start` arrives twice at once: from the terminal and relayed by npm.
      if (performance.now() - stoppingSince < RELAYED_SIGNAL_MS) return;
      app.logger.warn({ signal }, 'second stop signal: exiting at once, with responses still in flight');
      process.exit(128 + constants.signals[signal]);
    }
    stoppingSince = performance.now();
    // /readyz is 503 from here on; connections are still accepted for drainMs, so that load
    // balancers that have not noticed yet still reach a replica that answers.
    app.logger.info({ signal, graceMs, drainMs }, 'shutting down');
    // Past the grace period, exit anyway: a fill cut short leaves only a temporary file, which the
    // next start removes (the same recovery as after a kill -9), never a partial blob in the index.
    setTimeout(() => {
      app.logger.warn({ graceMs }, 'grace period over: exiting with responses still in flight');
      process.exit(1);
    }, graceMs).unref();
    closeApp(app, { drainMs, fillWaitMs: Math.max(0, graceMs - drainMs - CLOSE_RESERVE_MS) })
      .then(() => {
        // The last line: the stop completed in order (a collector can tell it from a crash).
        app.logger.info({ signal, ms: Math.round(performance.now() - stoppingSince!) }, 'layover stopped');
        app.logger.flush();
        process.exit(0);
      })
      .catch((error: unknown) => {
        app.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * DNS first, with only the modules it needs loaded: a node that resolves every name through Layover
 * has its queries refused until a restart binds the port. Bound before the rest of the modules
 * (fastify, undici, the cache) are loaded, it was 133 ms after spawn instead of 314 (medians of ten);
 * queries that arrive while they load wait in the socket's buffer, and while the cache opens (over a
 * second at 100,000 blobs) they are answered; intercepted names get SERVFAIL until the HTTPS listener
 * is up. Not on port 0: listenApp binds the registry ports first, which that port could be handed.
 */
async function listenDnsEarly(config: LayoverConfig): Promise<Required<Pick<AppDependencies, 'logger' | 'metrics' | 'dns'>>> {
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  const metrics = new Metrics();
  const dns = createDnsServer(config, logger, metrics);
  if (dns && config.listen.dns?.port !== 0) await dns.listen();
  return { logger, metrics, dns };
}
