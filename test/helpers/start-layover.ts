import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AppDependencies, buildApp, closeApp, listenApp, type LayoverApp, type ListeningAddresses } from '../../src/app.js';
import { loadConfig, type FlagValues } from '../../src/config/load-config.js';
import type { Logger } from 'pino';
import { captureLogger, type LogLine } from './capture-logger.js';
import { releaseLoopbackTwins } from './loopback-twin-port.js';

export interface RunningLayover {
  app: LayoverApp;
  addresses: ListeningAddresses;
  dataDir: string;
  /** Every log line so far, parsed. */
  logs: LogLine[];
  close(): Promise<void>;
}

/**
 * Layover on loopback with every port chosen by the OS. The upstream resolver
 * defaults to a closed loopback port, so nothing can reach a public resolver.
 */
export async function startLayover(flags: FlagValues = {}, env: NodeJS.ProcessEnv = {}, deps: Omit<AppDependencies, 'logger'> = {}): Promise<RunningLayover> {
  const dataDir = (flags['data-dir'] as string | undefined) ?? mkdtempSync(join(tmpdir(), 'layover-test-'));
  const config = loadConfig({
    flags: {
      'data-dir': dataDir,
      https: '127.0.0.1:0',
      http: '127.0.0.1:0',
      dns: '127.0.0.1:0',
      // The default, 0.0.0.0:3128, would collide between test files and reach beyond loopback.
      proxy: '127.0.0.1:0',
      advertise: '127.0.0.1',
      'upstream-dns': '127.0.0.1:9',
      'log-level': 'debug',
      ...flags,
    },
    env,
  });
  const { logger, lines: logs } = captureLogger();
  const app = await buildApp(config, { ...deps, logger: logger as Logger });
  // Ready first, so that the held ports are let go only just before Layover listens on them.
  await app.https.ready();
  await releaseLoopbackTwins();
  const addresses = await listenApp(app);
  return { app, addresses, dataDir, logs, close: () => closeApp(app) };
}
