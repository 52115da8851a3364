/**
 * A registry configured as `host:port` has its port fixed by REGISTRIES, while other listeners may
 * ask the OS for any port (`:0`): those must not be handed the registry's port first. Layover binds
 * the registry ports before every other listener. (The suite's fixtures let go of such a port just
 * before Layover starts; CI once failed with EADDRINUSE on one while Layover's listeners on port 0,
 * and its DNS server's start, came before it.)
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, Server } from 'node:net';
import { afterEach, expect, it, vi } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

let layover: RunningLayover | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await layover?.close();
});

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

it('the registry ports are listened on before any listener whose port the OS chooses', async () => {
  const registryPort = await freePort();
  const ports: unknown[] = [];
  const listen = Server.prototype.listen;
  vi.spyOn(Server.prototype, 'listen').mockImplementation(function (this: Server, ...args: unknown[]) {
    const [first] = args;
    ports.push(typeof first === 'object' && first !== null ? (first as { port?: unknown }).port : first);
    return (listen as (...a: unknown[]) => Server).apply(this, args);
  });
  layover = await startLayover({ registries: `ports-first.test:${registryPort}` });

  expect(layover.addresses.registryPorts.map((a) => a.port)).toEqual([registryPort]);
  // https, http, proxy and the DNS server's TCP side all ask for port 0 here.
  expect(ports.filter((port) => port === 0).length).toBeGreaterThanOrEqual(3);
  expect(ports[0]).toBe(registryPort);
});
