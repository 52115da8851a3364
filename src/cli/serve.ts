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
      dns: addresses.dns && `${addresses.dns.host}:${addresses.dns.port}`,
      registryPorts: addresses.registryPorts.map((a) => a.port),
      advertise: config.advertise,
      intercepted: config.registries.length,
    },
    'layover is listening',
  );
  let closing = false;
  const stop = (signal: string): void => {
    if (closing) return;
    closing = true;
    app.logger.info({ signal }, 'shutting down');
    void closeApp(app).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
