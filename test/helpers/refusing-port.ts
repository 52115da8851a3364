/**
 * A TCP port on which connections are refused for as long as the test holds it. A port that was free a
 * moment ago is not enough: another listener of the run (the proxy the test starts next, a parallel
 * test file) may be given it and answer. Here the port is the local end of an established connection:
 * bound without SO_REUSEADDR, so no listener can take it while it is held, and not listening, so a SYN
 * to it is answered with a reset.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface RefusingPort {
  port: number;
  release(): void;
}

export async function holdRefusingPort(host = '127.0.0.1'): Promise<RefusingPort> {
  const listener = createServer();
  listener.listen(0, host);
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect((listener.address() as AddressInfo).port, host);
  await once(client, 'connect');
  const [server] = await accepted;
  // close() stops listening at once; its callback would wait for the held connection to end.
  listener.close();
  const port = client.localPort;
  if (port === undefined) throw new Error('the held connection has no local port');
  return {
    port,
    release: () => {
      client.destroy();
      server.destroy();
    },
  };
}
