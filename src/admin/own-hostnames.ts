import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { HostnameSet, parseHostname } from '../registry/hostname.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/**
 * Names no one can register in public DNS (RFC 6761, 6762, 8375, 2606, ICANN's .internal) and names
 * clusters use for their own services: a page of another site cannot be served under them.
 */
const PRIVATE_SUFFIXES = ['localhost', 'local', 'internal', 'lan', 'home.arpa', 'test', 'example', 'invalid', 'svc'];

/**
 * The names the operations routes answer under (DNS rebinding): a page of another site can point its
 * own name at Layover's address and then read, as its own origin, whatever a browser inside the
 * network reaches, such as the status page and /metrics while CLIENT_AUTH=none. Its requests carry
 * that name in Host, and on plain HTTP nothing else tells them from a scraper's (a script may even set
 * User-Agent). Layover's names: addresses, single-label and private names (above), docker.proxy, the
 * machine's hostname and ADMIN_HOSTNAMES (`*`: any name).
 */
export class OwnHostnames {
  readonly #any: boolean;
  readonly #names: HostnameSet;

  constructor(configured: readonly string[], machine = hostname()) {
    this.#any = configured.includes('*');
    const machineNames = [machine, machine.split('.')[0]!].filter((name) => parseHostname(name) !== null);
    const privateNames = PRIVATE_SUFFIXES.flatMap((suffix) => [suffix, `*.${suffix}`]);
    this.#names = new HostnameSet([...privateNames, DOCKER_PROXY_HOST, ...machineNames, ...configured.filter((name) => name !== '*')]);
  }

  /** True when a request to `host` (Host, or HTTP/2's :authority, port and all) may be answered. */
  allows(host: string | undefined): boolean {
    // No browser leaves Host out.
    if (this.#any || !host) return true;
    // [v6]:port, or name:port / v4:port.
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
    if (isIP(name) !== 0) return true;
    const normal = parseHostname(name);
    return normal !== null && (!normal.includes('.') || this.#names.has(normal));
  }
}
