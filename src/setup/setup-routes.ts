import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { LayoverConfig } from '../config/layover-config.js';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import { formatSetupAddress, parseSetupAddress } from './setup-address.js';
import { SETUP_KINDS, setupScript, type SetupKind } from './setup-scripts.js';

export interface SetupRoutesOptions {
  caCertPem: string;
  /** The intercepted names. */
  registries: readonly string[];
  /** Where /setup/hosts points names when the node did not reach Layover by an IP address. */
  advertise: readonly string[];
  /**
   * Where the HTTPS proxy is, as seen from the node: `request` on the proxy listener itself (the
   * Host header names it, port 80 when Host has none), the proxy's port at the Host's name on the
   * other listeners, or null when HTTPS_PROXY mode is off.
   */
  proxy: 'request' | { port: () => number } | null;
  constraints?: { host: RegExp };
}

/**
 * The setup options of a listener: the proxy listener itself (`proxy`) or another one, which names
 * the proxy listener's port once it listens (the configured port may be 0).
 */
export function setupOptionsFor(
  config: LayoverConfig,
  listener: 'proxy' | 'other',
  proxyServer?: { address(): AddressInfo | string | null } | null,
): Omit<SetupRoutesOptions, 'caCertPem' | 'constraints'> {
  const configured = config.listen.proxy;
  const port = (): number => {
    const address = proxyServer?.address();
    return address && typeof address === 'object' ? address.port : configured!.port;
  };
  const proxy = listener === 'proxy' ? 'request' : configured ? { port } : null;
  return { registries: config.registries, advertise: config.advertise, proxy };
}

/**
 * GET /setup/systemd, /setup/containerd, /setup/podman and /setup/hosts: bash scripts that point a
 * node at Layover (src/setup/setup-scripts.ts), with the address the node used for this request.
 * Public, like /ca.crt: they hold nothing but that CA, the intercepted names and addresses.
 */
export async function setupRoutes(app: FastifyInstance, options: SetupRoutesOptions): Promise<void> {
  const routeOptions = options.constraints ? { constraints: options.constraints } : {};
  app.get<{ Params: { kind: string } }>('/setup/:kind', routeOptions, async (request, reply) => {
    const kind = request.params.kind as SetupKind;
    if (!SETUP_KINDS.includes(kind)) throw new OciError('NOT_FOUND', `no such setup script; there are ${SETUP_KINDS.map((k) => `/setup/${k}`).join(', ')}`);
    const address = parseSetupAddress(request.host);
    if (!address) {
      annotateRequestLog(request, { refused: 'setup-host' });
      throw new OciError('UNSUPPORTED', 'the Host header must be a plain host name or IP address with an optional port: it goes into the script', undefined, {
        status: 400,
      });
    }
    let proxy: string | null = null;
    if (options.proxy === 'request') proxy = formatSetupAddress(address.host, address.port ?? 80);
    else if (options.proxy) proxy = formatSetupAddress(address.host, options.proxy.port());
    if (proxy === null && kind !== 'hosts') {
      throw new OciError('NOT_FOUND', `HTTPS_PROXY mode is off (LAYOVER_PROXY=off), so /setup/${kind} has nothing to set up; /setup/hosts works without it`);
    }
    const addresses = address.family !== 0 ? [address.host] : options.advertise;
    const script = setupScript(kind, { proxy, addresses, registries: options.registries, caCertPem: options.caCertPem });
    return reply.header('content-type', 'text/x-shellscript; charset=utf-8').header('cache-control', 'no-store').send(script);
  });
}
