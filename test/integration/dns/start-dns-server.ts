/** A DnsServer on 127.0.0.1 and a free port for the DNS defence tests, closed when the test ends. */
import { onTestFinished } from 'vitest';
import { DnsServer, type DnsServerOptions } from '../../../src/dns/dns-server.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { captureLogger, type LogLine } from '../../helpers/capture-logger.js';
import { LOOPBACK_POLICY } from '../../unit/dns/policies.js';

/** Intercepts docker.proxy (answered with 127.0.0.10) and forwards nothing unless `upstreams` is given. */
export async function startDnsServer(options: Partial<DnsServerOptions> = {}): Promise<{ port: number; lines: LogLine[] }> {
  const { logger, lines } = captureLogger('debug');
  const dns = new DnsServer({
    listen: { host: '127.0.0.1', port: 0 },
    intercepted: new HostnameSet(['docker.proxy']),
    advertise: ['127.0.0.10'],
    upstreams: [],
    policy: LOOPBACK_POLICY,
    logger,
    ...options,
  });
  onTestFinished(() => dns.close());
  const { port } = await dns.listen();
  return { port, lines };
}
