import dgram from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';

/** Room for bursts (every node's look-ups arrive here); the kernel caps it at net.core.rmem_max. */
export const UDP_RECV_BUFFER_BYTES = 1 << 20;

/**
 * A DNS server's UDP socket, bound to `host` and `port`. `reusePort` lets the
 * UDP answer workers bind the same address and port (SO_REUSEPORT: the kernel
 * spreads the clients over the sockets); without it the port stays ours alone.
 */
export function bindUdpSocket(host: string, port: number, reusePort: boolean): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', lookup: literalLookup, ...(reusePort ? { reusePort: true } : {}) });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Every reply goes to the address a query came from, always an IP literal:
 * answering the look-up dgram makes before each send on the spot spares the
 * process.nextTick and the callback that dns.lookup takes even for a literal.
 */
function literalLookup(address: string, family: unknown, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const literal = isIP(address);
  if (literal !== 0) callback(null, address, literal);
  else dnsLookup(address, { family: family === 6 || family === 'IPv6' ? 6 : 4 }, callback);
}
