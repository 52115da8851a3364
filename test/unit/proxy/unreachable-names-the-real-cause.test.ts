/**
 * The cause behind an unreachable upstream, found through the wrappers around it: reply-from's and
 * undici's (`cause`) and happy eyeballs' AggregateError (`errors`, whose own `code` is only the
 * first address's). The socket errors are real ones from closed loopback ports; only the mixed
 * case, which needs an address without a route (see the namespace test in
 * test/integration/upstream/unreachable-upstream-names-its-real-cause.test.ts), is assembled by hand
 * in the shape Node gives it.
 */
import { createServer, connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectFailures, unreachable } from '../../../src/proxy/upstream-unreachable.js';
import type { UpstreamTarget } from '../../../src/proxy/upstream-target.js';

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The error Node raises when connecting to `port` on every address of `addresses` fails. */
function connectError(port: number, addresses: Array<{ address: string; family: number }>): Promise<Error> {
  return new Promise((resolve) => {
    const socket = connect({
      host: 'upstream.test',
      port,
      autoSelectFamily: true,
      lookup: (_name, options, callback) => {
        if ((options as { all?: boolean }).all) (callback as (e: null, a: typeof addresses) => void)(null, addresses);
        else (callback as (e: null, a: string, f: number) => void)(null, addresses[0]!.address, addresses[0]!.family);
      },
    });
    socket.on('error', resolve);
  });
}

const target = { registry: 'upstream.test' } as UpstreamTarget;

function errno(code: string, address: string, port: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`connect ${code} ${address}:${port}`), { code, address, port, syscall: 'connect' });
}

describe('connectFailures and unreachable()', () => {
  it('a refused connection, as reply-from wraps it', async () => {
    const port = await closedPort();
    const refused = await connectError(port, [{ address: '127.0.0.1', family: 4 }]);
    const wrapped = new Error('Internal Server Error', { cause: refused });
    expect(connectFailures(wrapped)).toEqual([{ code: 'ECONNREFUSED', address: `127.0.0.1:${port}` }]);
    expect(unreachable(target, wrapped).detail).toEqual({ reason: 'ECONNREFUSED' });
  });

  it('every address happy eyeballs tried, from its AggregateError', async () => {
    const port = await closedPort();
    const error = await connectError(port, [
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(error).toBeInstanceOf(AggregateError);
    expect(connectFailures(error).map((f) => f.code)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    expect(unreachable(target, error).detail).toEqual({ reason: 'ECONNREFUSED' });
  });

  it('an address without a route does not hide the one that answered, whatever the order', () => {
    const noRoute = errno('ENETUNREACH', 'fd00::1', 443);
    const refused = errno('ECONNREFUSED', '192.0.2.1', 443);
    // Node's AggregateError takes the first address's code as its own.
    const aggregate = Object.assign(new AggregateError([noRoute, refused], ''), { code: 'ENETUNREACH' });
    const oci = unreachable(target, aggregate);
    expect(oci.detail).toEqual({ reason: 'ECONNREFUSED', reasons: ['ECONNREFUSED', 'ENETUNREACH'] });
    expect(oci.status).toBe(503);
    expect(connectFailures(aggregate)).toEqual([
      { code: 'ECONNREFUSED', address: '192.0.2.1:443' },
      { code: 'ENETUNREACH', address: '[fd00::1]:443' },
    ]);
  });

  it('a route missing on every address is that, not a refusal', () => {
    const aggregate = new AggregateError([errno('ENETUNREACH', '10.0.0.1', 443), errno('ENETUNREACH', 'fd00::1', 443)], '');
    expect(unreachable(target, new Error('Service Unavailable', { cause: aggregate })).detail).toEqual({ reason: 'ENETUNREACH' });
  });

  it('an error without a code keeps its message as the reason', () => {
    expect(unreachable(target, new Error('other side closed')).detail).toEqual({ reason: 'other side closed' });
  });
});
