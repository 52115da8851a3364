import type { LookupAddress } from 'node:dns';
import { connect, type Socket } from 'node:net';
import type { AddressPolicy } from '../upstream/address-policy.js';
import { formatTarget, type ConnectTarget } from './connect-target.js';

/** Why a tunnel could not be opened, with the status the CONNECT gets. */
export class DialError extends Error {
  override readonly name = 'DialError';

  constructor(
    readonly status: 403 | 502 | 504,
    readonly reason: 'address' | 'dns' | 'connect' | 'timeout',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface DialOptions {
  /** The real resolvers (src/upstream/upstream-resolver.ts), never the system's, which may point at Layover. */
  resolver: { resolve(hostname: string): Promise<LookupAddress[]> };
  /** Which addresses a tunnel may reach: the storage-fetch policy, widened by REDIRECT_ALLOW_NETWORKS. */
  addressPolicy: AddressPolicy;
  /** PROXY_CONNECT_TIMEOUT: for every address tried together. */
  connectTimeoutMs: number;
}

/**
 * Connects to a tunnel's target: resolves it through the upstream resolvers, drops every address the
 * address policy forbids (loopback, private, link-local and the like, unless allowed), then tries the
 * rest in order (IPv4 first) until one answers. A name that resolves only to forbidden addresses is
 * refused with 403, so the proxy cannot be used to reach Layover's own host or its network.
 */
export async function dialTarget(target: ConnectTarget, { resolver, addressPolicy, connectTimeoutMs }: DialOptions): Promise<Socket> {
  let addresses: LookupAddress[];
  if (target.kind === 'ip') {
    addresses = [{ address: target.host, family: target.host.includes(':') ? 6 : 4 }];
  } else {
    try {
      addresses = await resolver.resolve(target.host);
    } catch (error) {
      throw new DialError(502, 'dns', `cannot resolve ${target.host}`, { cause: error });
    }
  }
  const verdicts = addresses.map((a) => ({ ...a, verdict: addressPolicy.check(a.address) }));
  const allowed = verdicts.filter((a) => a.verdict.allowed);
  if (allowed.length === 0) {
    const kinds = [...new Set(verdicts.map((a) => a.verdict.kind ?? 'forbidden'))].join(', ');
    throw new DialError(403, 'address', `${formatTarget(target)} is a ${kinds} address, which tunnels may not reach (REDIRECT_ALLOW_NETWORKS)`);
  }
  const deadline = Date.now() + connectTimeoutMs;
  let last: DialError | undefined;
  for (const { address } of allowed) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await connectOnce(address, target.port, left);
    } catch (error) {
      last = error instanceof DialError ? error : new DialError(502, 'connect', `cannot connect to ${formatTarget(target)}`, { cause: error });
    }
  }
  throw last ?? new DialError(504, 'timeout', `connecting to ${formatTarget(target)} timed out`);
}

function connectOnce(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // Half-open: a client that finishes sending still gets the rest of the answer.
    const socket = connect({ host: address, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DialError(504, 'timeout', `connecting to ${address} port ${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (error: Error): void => {
      clearTimeout(timer);
      reject(new DialError(502, 'connect', `cannot connect to ${address} port ${port}: ${(error as NodeJS.ErrnoException).code ?? error.message}`, { cause: error }));
    };
    socket.once('error', onError);
  });
}
