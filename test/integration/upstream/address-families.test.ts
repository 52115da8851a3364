import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { createTestCa } from '../../bench/test-ca.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { httpsGet } from '../../helpers/https-get.js';
import { startLayover } from '../../helpers/start-layover.js';

/** Fixture upstream on [::1] only: a registry ping endpoint that says which address it was reached at. */
it('reaches an upstream over IPv6 when its name has only AAAA, or when its A address is dead', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layover-families-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('v6', ['v6only.test', 'dual.test']);
  const server = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ via: req.socket.localAddress }));
  });
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;

  // dual.test's A record points at a loopback address where nothing listens.
  const dns = await startDnsmasq({ hostRecords: { 'v6only.test': ['::1'], 'dual.test': ['127.0.0.99', '::1'] } });
  onTestFinished(() => dns.stop());
  const layover = await startLayover({
    registries: `v6only.test:${port} dual.test:${port}`,
    'upstream-dns': `${dns.host}:${dns.port}`,
    'upstream-ca': ca.certFile,
  });
  onTestFinished(() => layover.close());

  const ping = (name: string) => httpsGet(port, name, '/v2/', layover.app.ca.certPem);
  expect(await ping('v6only.test')).toEqual({ status: 200, body: '{"via":"::1"}' });
  expect(await ping('dual.test')).toEqual({ status: 200, body: '{"via":"::1"}' });
});
