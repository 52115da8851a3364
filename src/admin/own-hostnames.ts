import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { FastifyRequest } from 'fastify';
import { HostnameSet, parseHostname } from '../registry/hostname.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/**
 * The names the operations routes answer a browser under (DNS rebinding): a page of another site can
 * point its own name at Layover's address and then read, as its own origin, whatever a browser inside
 * the network reaches, such as the status page and /metrics while CLIENT_AUTH=none. Its requests carry
 * that name in Host. Layover's own names are IP addresses, localhost, docker.proxy, the machine's
 * hostname and ADMIN_HOSTNAMES (`*`: any name).
 */
export class OwnHostnames {
  readonly #any: boolean;
  readonly #names: HostnameSet;

  constructor(configured: readonly string[], machine = hostname()) {
    this.#any = configured.includes('*');
    const machineNames = [machine, machine.split('.')[0]!].filter((name) => parseHostname(name) !== null);
    this.#names = new HostnameSet(['localhost', DOCKER_PROXY_HOST, ...machineNames, ...configured.filter((name) => name !== '*')]);
  }

  /** True when a request may be answered under its Host: one of Layover's names, or not sent by a browser. */
  allows(request: Pick<FastifyRequest, 'headers'>): boolean {
    if (this.#any || !sentByBrowser(request)) return true;
    const host = request.headers.host ?? '';
    // [v6]:port, or name:port / v4:port.
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
    return isIP(name) !== 0 || this.#names.has(name);
  }
}

/**
 * Browsers say which site and which kind of fetch a request comes from (Sec-Fetch-Site and -Dest, which
 * a page's script can neither set nor remove) and call themselves Mozilla (older ones say nothing
 * else); scrapers, the CLI and curl do neither. Sec-Fetch-Mode alone is no sign: Node's fetch sends it.
 */
function sentByBrowser({ headers }: Pick<FastifyRequest, 'headers'>): boolean {
  if (headers['sec-fetch-site'] !== undefined || headers['sec-fetch-dest'] !== undefined) return true;
  return /^Mozilla\//.test(headers['user-agent'] ?? '');
}
