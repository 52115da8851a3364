/**
 * Layover (in this process) intercepting a fixture upstream that listens on `address:port` as `host`:
 * dnsmasq names it, Layover trusts its CA, and `ask` sends one request to Layover under that name on
 * a connection of its own (Layover's registry port is the fixture's port, on 127.0.0.1).
 *
 *   const intercepted = await interceptFixture({ host: 'x.test', address: '127.0.0.8', port, caFile });
 *   onTestFinished(() => intercepted.close());
 */
import { request as httpsRequest } from 'node:https';
import { type Dnsmasq, startDnsmasq } from './dnsmasq.js';
import { type RunningLayover, startLayover } from './start-layover.js';

export interface FixtureAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface AskOptions {
  method?: string;
  headers?: Record<string, string>;
  /** The request fails when no complete answer came by then; default 10 s. */
  timeoutMs?: number;
}

export interface InterceptedFixture {
  layover: RunningLayover;
  ask(path: string, options?: AskOptions): Promise<FixtureAnswer>;
  /** Stops Layover and dnsmasq (not the fixture). */
  close(): Promise<void>;
}

export interface FixtureAddress {
  host: string;
  address: string;
  port: number;
  caFile: string;
  flags?: Record<string, string>;
  env?: Record<string, string>;
}

export async function interceptFixture({ host, address, port, caFile, flags = {}, env = {} }: FixtureAddress): Promise<InterceptedFixture> {
  let dns: Dnsmasq | undefined;
  let layover: RunningLayover | undefined;
  const close = async (): Promise<void> => {
    await layover?.close();
    await dns?.stop();
  };
  try {
    dns = await startDnsmasq({ hostRecords: { [host]: [address] } });
    layover = await startLayover({ registries: `${host}:${port}`, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': caFile, ...flags }, env);
  } catch (error) {
    await close();
    throw error;
  }
  const ca = layover.app.ca.certPem;
  const ask = (path: string, options: AskOptions = {}): Promise<FixtureAnswer> =>
    new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      const headers = { host: `${host}:${port}`, ...options.headers };
      const req = httpsRequest({ host: '127.0.0.1', port, servername: host, ca, method: options.method ?? 'GET', path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${path} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  return { layover, ask, close };
}
