import { buildApp, closeApp, listenApp } from '../app.js';
import type { LayoverConfig } from '../config/layover-config.js';

/** `layover serve`: listen until SIGTERM or SIGINT, then close gracefully. */
export async function serve(config: LayoverConfig): Promise<void> {
  const app = await buildApp(config);
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
  let closing = false;
  const stop = (signal: string): void => {
    if (closing) return;
    closing = true;
    app.logger.info({ signal, graceMs }, 'shutting down');
    // Past the grace period, exit anyway: a fill cut short leaves only a temporary file, which the
    // next start removes (the same recovery as after a kill -9), never a partial blob in the index.
    setTimeout(() => {
      app.logger.warn({ graceMs }, 'grace period over: exiting with responses still in flight');
      process.exit(1);
    }, graceMs).unref();
    void closeApp(app).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
