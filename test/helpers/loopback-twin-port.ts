/**
 * A fixture posing as a registry listens on its own loopback address (127.0.0.9:P), and Layover
 * serves that registry on the same port P on 127.0.0.1. The kernel hands out P free on 127.0.0.9
 * only, and other test files' listeners on 127.0.0.1 take ports from the same range, so Layover's
 * listen could meet EADDRINUSE. Here P is taken on 127.0.0.1 first and held there (a listener the
 * kernel's port picking skips) until Layover is about to listen on it.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server } from 'node:net';

const held = new Map<number, Server>();

/** Listens `server` on `address` at a port it also holds on 127.0.0.1; returns the port. */
export async function listenWithLoopbackTwin(server: Server, address: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const twin = createServer();
    twin.listen(0, '127.0.0.1');
    await once(twin, 'listening');
    const { port } = twin.address() as AddressInfo;
    const listened = await new Promise<boolean | Error>((resolve) => {
      const failed = (error: NodeJS.ErrnoException): void => resolve(error.code === 'EADDRINUSE' && attempt < 20 ? false : error);
      server.once('error', failed);
      server.listen(port, address, () => {
        server.off('error', failed);
        resolve(true);
      });
    });
    if (listened === true) {
      held.set(port, twin);
      return port;
    }
    await closeServer(twin);
    if (listened instanceof Error) throw listened;
  }
}

/** Lets go of every port held on 127.0.0.1: Layover is about to listen on them. */
export async function releaseLoopbackTwins(): Promise<void> {
  await Promise.all([...held.keys()].map(releaseLoopbackTwin));
}

export async function releaseLoopbackTwin(port: number): Promise<void> {
  const twin = held.get(port);
  held.delete(port);
  if (twin) await closeServer(twin);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
