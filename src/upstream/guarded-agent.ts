import type { LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { normalizeAddress } from './address-policy.js';
import type { UpstreamTls } from './upstream-tls.js';

export interface GuardedAgentOptions {
  readonly tls: UpstreamTls;
  readonly connectMs: number;
  readonly readMs: number;
  /** The error a connection fails with when its socket reached an address not among those allowed. */
  readonly refused: (remote: string) => Error;
}

/** The addresses of a URL's host: a literal address as it is, a name as `resolve` answers (its errors pass through). */
export async function addressesOf(hostname: string, resolve: (hostname: string) => Promise<LookupAddress[]>): Promise<LookupAddress[]> {
  const bare = hostname.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  return family ? [{ address: bare, family }] : resolve(bare);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * An undici Agent for one URL an upstream handed Layover (a storage redirect, a token realm) that
 * connects to `addresses` only: they were resolved once and checked against the AddressPolicy;
 * its lookup answers with them, whatever the host would resolve to by now, and the connector
 * checks the address the socket actually reached (the last word against DNS rebinding). One
 * connection; the caller closes the Agent when the response is done.
 */
export function guardedAgent(hostname: string, addresses: readonly LookupAddress[], options: GuardedAgentOptions): Agent {
  const allowed = new Set(addresses.map((a) => normalizeAddress(a.address)));
  const lookup = (_hostname: string, opts: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
    const wanted = opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : Number(opts.family ?? 0);
    const usable = wanted ? addresses.filter((a) => a.family === wanted) : [...addresses];
    if (usable.length === 0) return callback(Object.assign(new Error(`no IPv${wanted} address for ${hostname}`), { code: 'ENOTFOUND' }), '');
    if (opts.all) callback(null, usable);
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
  const connector = buildConnector({ secureContext: options.tls.secureContext, rejectUnauthorized: options.tls.rejectUnauthorized, timeout: options.connectMs, lookup: lookup as never, autoSelectFamily: true });
  return new Agent({
    connect: (connectOptions, callback) =>
      connector(connectOptions, (error, socket) => {
        if (error) return callback(error, null);
        const remote = socket.remoteAddress ? normalizeAddress(socket.remoteAddress) : '';
        if (allowed.has(remote)) return callback(null, socket);
        socket.destroy();
        callback(options.refused(remote), null);
      }),
    headersTimeout: options.readMs,
    bodyTimeout: options.readMs,
    connections: 1,
  });
}
