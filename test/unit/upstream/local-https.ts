import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { AddressPolicy } from '../../../src/upstream/address-policy.js';
import { RealmGuard } from '../../../src/upstream/auth/realm-guard.js';

/** Names every local server answers to (all resolve to 127.0.0.1 through the agent's lookup). */
export const NAMES = ['registry.example.test', 'auth.example.test', 'realm.elsewhere.test', 'storage.example.org', 'other.registry.example.test'];

export interface Recorded {
  host: string;
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

export interface LocalHttps {
  /** Every request any server received, oldest first. */
  readonly requests: Recorded[];
  /** A dispatcher that resolves NAMES to 127.0.0.1 and trusts the servers' certificate. */
  readonly agent: Agent;
  /**
   * The guard for realms on other hosts, resolving NAMES to 127.0.0.1 and trusting the servers'
   * certificate; loopback is reached only when `allowNetworks` (REDIRECT_ALLOW_NETWORKS) says so.
   */
  realms(allowNetworks: string[]): RealmGuard;
  /** Starts a server; its origin is `https://<name>:<port>` for any of NAMES. */
  serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<number>;
  close(): Promise<void>;
}

/** Real HTTPS servers on loopback with a self-signed certificate for NAMES (made with openssl). */
export async function localHttps(): Promise<LocalHttps> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-auth-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=local', '-keyout', join(dir, 'key'), '-out', join(dir, 'crt'), '-addext', `subjectAltName=${NAMES.map((n) => `DNS:${n}`).join(',')},IP:127.0.0.1`], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'crt'), 'utf8');
  const key = readFileSync(join(dir, 'key'), 'utf8');
  rmSync(dir, { recursive: true, force: true });
  const servers: Server[] = [];
  const requests: Recorded[] = [];
  const agent = new Agent({
    connect: {
      ca: [cert],
      lookup: (_host, options, callback) => {
        if ((options as { all?: boolean }).all) (callback as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
        else callback(null, '127.0.0.1', 4);
      },
    },
  });
  return {
    requests,
    agent,
    realms: (allowNetworks) =>
      new RealmGuard({
        resolve: async () => [{ address: '127.0.0.1', family: 4 }],
        policy: new AddressPolicy(allowNetworks),
        tls: { secureContext: createSecureContext({ ca: [cert] }), rejectUnauthorized: true },
        connectMs: 5000,
        readMs: 5000,
      }),
    async serve(handler) {
      const server = createServer({ cert, key }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          requests.push({ host: (req.headers.host ?? '').split(':')[0]!, method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
          handler(req, res, body);
        });
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as AddressInfo).port;
    },
    async close() {
      await agent.close();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
