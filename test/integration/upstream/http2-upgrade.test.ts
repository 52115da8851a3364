import { mkdtempSync, readFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished, vi } from 'vitest';
import { createTestCa } from '../../bench/test-ca.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { httpsGet } from '../../helpers/https-get.js';
import { listenWithLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import { startLayover } from '../../helpers/start-layover.js';

/**
 * Fixture upstream: a registry front that accepts only HTTP/2 and answers HTTP/1.1 with
 * 426 Upgrade Required, as some do. No real program here behaves that way on demand.
 */
async function startH2OnlyUpstream(cert: string, key: string): Promise<{ server: Http2SecureServer; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createSecureServer({ cert, key, allowHTTP1: true }, (req, res) => {
    seen.push(`${req.httpVersion} ${req.method} ${req.url}`);
    if (req.httpVersion !== '2.0') {
      res.writeHead(426, { upgrade: 'h2', connection: 'upgrade', 'content-type': 'text/plain' });
      return res.end('HTTP/2 required');
    }
    // Docker Hub's quota headers, which Layover passes on and logs.
    res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0', 'ratelimit-remaining': '97;w=21600' });
    res.end('{"over":"h2"}');
  });
  return { server, port: await listenWithLoopbackTwin(server, '127.0.0.2'), seen };
}

it('reaches an upstream that answers 426 over h2, keeps using h2 for it, and logs its rate-limit headers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layover-h2-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('h2only', ['h2only.test']);
  const upstream = await startH2OnlyUpstream(readFileSync(leaf.certFile, 'utf8'), readFileSync(leaf.keyFile, 'utf8'));
  onTestFinished(() => new Promise<void>((resolve) => upstream.server.close(() => resolve())));
  const dns = await startDnsmasq({ hostRecords: { 'h2only.test': ['127.0.0.2'] } });
  onTestFinished(() => dns.stop());
  const layover = await startLayover({
    registries: `h2only.test:${upstream.port}`,
    'upstream-dns': `${dns.host}:${dns.port}`,
    'upstream-ca': ca.certFile,
  });
  onTestFinished(() => layover.close());
  expect(layover.addresses.registryPorts.map((a) => a.port)).toEqual([upstream.port]);

  const get = () => httpsGet(upstream.port, 'h2only.test', '/v2/', layover.app.ca.certPem);
  expect(await get()).toEqual({ status: 200, body: '{"over":"h2"}' });
  expect(await get()).toEqual({ status: 200, body: '{"over":"h2"}' });
  // One HTTP/1.1 attempt, answered 426; h2 ever after.
  expect(upstream.seen).toEqual(['1.1 GET /v2/', '2.0 GET /v2/', '2.0 GET /v2/']);
  expect(layover.logs.some((l) => l.msg === 'upstream requires HTTP/2: switching to h2')).toBe(true);
  // The log line is written when the response has finished on the server side: wait for it.
  await vi.waitFor(() => expect(layover.logs.filter((l) => l.msg === 'request').map((l) => l.ratelimitRemaining)).toEqual(['97', '97']));
});
