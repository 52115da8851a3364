import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { parseHostname } from '../registry/hostname.js';
import { OciError } from '../registry/oci-errors.js';
import { formatTarget, type ConnectTarget } from './connect-target.js';

/** TLS sockets that came in through CONNECT -> the authority the client named there. */
const authorities = new WeakMap<object, ConnectTarget>();

export function rememberConnectAuthority(socket: object, target: ConnectTarget): void {
  authorities.set(socket, target);
}

/** True for a TLS socket that came in through CONNECT: its requests are checked against that authority. */
export function cameThroughConnect(socket: object): boolean {
  return authorities.has(socket);
}

/** True when a TLS server name (SNI) names the CONNECT's host; a client may also send none. */
export function sniMatches(servername: string | undefined | false, target: ConnectTarget): boolean {
  if (!servername) return true;
  return target.kind === 'name' && parseHostname(servername) === target.host;
}

/** True when `Host` names the same host and port as the CONNECT (no port meaning 443, as on the TLS listener). */
export function hostMatches(hostHeader: string | undefined, target: ConnectTarget): boolean {
  const match = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(hostHeader ?? '');
  if (!match || target.kind !== 'name') return false;
  const port = match[2] === undefined ? 443 : Number(match[2]);
  return parseHostname(match[1]!) === target.host && port === target.port;
}

/**
 * On the TLS listener: a request that arrived inside `CONNECT a:443` must be for `a:443`. The
 * decision to intercept was made for that authority; a client that then sends SNI or Host for
 * another name (intercepted or not) would have its requests logged, routed and judged under a name
 * the proxy never decided on. SNI is checked during the handshake (src/connect-proxy/); this checks
 * Host on every request of the connection and answers 421 Misdirected Request (RFC 9110 §15.5.20).
 */
export function registerConnectAuthorityCheck(app: FastifyInstance): void {
  // A callback hook: an async one costs every request a promise and a turn of the microtask queue.
  app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) => {
    const target = authorities.get(request.raw.socket);
    if (!target || hostMatches(request.headers.host, target)) return done();
    annotateRequestLog(request, { refused: 'connect-authority-mismatch' });
    done(
      new OciError('DENIED', `this connection was opened with CONNECT ${formatTarget(target)}: its requests must name that host`, undefined, {
        status: 421,
        headers: { connection: 'close' },
      }),
    );
  });
}
