import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Tls from 'node:tls';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { guardedAgent } from '../../../src/upstream/guarded-agent.js';
import { UpstreamDispatcher } from '../../../src/upstream/upstream-agent.js';
import { UpstreamResolver } from '../../../src/upstream/upstream-resolver.js';
import { upstreamTls } from '../../../src/upstream/upstream-tls.js';

// undici opens its TLS connections with tls.connect on the CommonJS module: watched there.
const tls = createRequire(import.meta.url)('node:tls') as typeof Tls;

describe('upstream TLS', () => {
  let dir: string;
  let certFile: string;
  let server: Server;
  let origin: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'layover-upstream-tls-'));
    certFile = join(dir, 'crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=local', '-keyout', join(dir, 'key'), '-out', certFile, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    // Each answer closes its connection: every request below opens a connection of its own.
    server = createServer({ cert: readFileSync(certFile), key: readFileSync(join(dir, 'key')) }, (_req, res) => res.writeHead(200, { connection: 'close' }).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => vi.restoreAllMocks());

  const guardedGet = async (trust: ReturnType<typeof upstreamTls>): Promise<number> => {
    const agent = guardedAgent('127.0.0.1', [{ address: '127.0.0.1', family: 4 }], { tls: trust, connectMs: 5000, readMs: 5000, refused: () => new Error('refused') });
    try {
      const response = await request(`${origin}/`, { dispatcher: agent });
      await response.body.text();
      return response.statusCode;
    } finally {
      await agent.close();
    }
  };

  it('opens every connection of the upstream dispatcher and of guarded agents with one context made once', async () => {
    const connect = vi.spyOn(tls, 'connect');
    const config = loadConfig({ env: { LAYOVER_UPSTREAM_CA: certFile }, machine: { advertise: () => ['127.0.0.1'], upstreamDns: () => [{ host: '127.0.0.1', port: 9 }], ownNetworks: () => ['127.0.0.0/8'] } });
    const dispatcher = new UpstreamDispatcher(config, new UpstreamResolver({ servers: [{ host: '127.0.0.1', port: 9 }] }));
    try {
      for (let i = 0; i < 2; i++) {
        const response = await request(`${origin}/v2/`, { dispatcher });
        expect(await response.body.text()).toBe('ok');
      }
    } finally {
      await dispatcher.close();
    }
    const trust = upstreamTls(config);
    expect(await guardedGet(trust)).toBe(200);
    expect(await guardedGet(trust)).toBe(200);

    const options = connect.mock.calls.map(([first]) => first as Tls.ConnectionOptions);
    expect(options).toHaveLength(4);
    for (const option of options) {
      expect(option.ca).toBeUndefined();
      expect(option.secureContext).toBeDefined();
    }
    // The dispatcher's two connections share its context, the guarded agents theirs.
    expect(options[1]!.secureContext).toBe(options[0]!.secureContext);
    expect(options[2]!.secureContext).toBe(trust.secureContext);
    expect(options[3]!.secureContext).toBe(trust.secureContext);
  });

  it('still verifies: a certificate outside the system roots and UPSTREAM_CA is refused unless VERIFY_SSL is off', async () => {
    await expect(guardedGet(upstreamTls({ upstreamCa: null, verifyUpstreamTls: true }))).rejects.toThrow(/self[- ]signed|certificate/i);
    expect(await guardedGet(upstreamTls({ upstreamCa: null, verifyUpstreamTls: false }))).toBe(200);
    expect(await guardedGet(upstreamTls({ upstreamCa: certFile, verifyUpstreamTls: true }))).toBe(200);
  });
});
