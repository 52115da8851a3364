/**
 * Review of issue 12: `layover prefetch` prints what registries sent (their error messages, relayed
 * by the admin API). An escape sequence in one would be run by the operator's terminal, so every
 * string is shown with its control characters replaced. The admin API here is a small loopback
 * server (a fixture: it stands for a Layover relaying a hostile registry's words).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { prefetchCommand } from '../../../src/cli/prefetch-command.js';
import { loadConfig } from '../../../src/config/load-config.js';

const HOSTILE = 'manifest unknown \u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u009b31m';
const servers: Server[] = [];
afterEach(() => servers.splice(0).forEach((server) => server.close()));

async function adminApi(answer: (res: import('node:http').ServerResponse) => void): Promise<number> {
  const server = createServer((_req, res) => answer(res));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function configFor(port: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-prefetch-cli-'));
  writeFileSync(join(dataDir, 'admin.token'), 'an-admin-token-long-enough\n');
  return loadConfig({ flags: { 'data-dir': dataDir, http: `127.0.0.1:${port}`, 'upstream-dns': '127.0.0.1:9', advertise: '127.0.0.1' }, env: {} });
}

const sink = () => {
  let text = '';
  return { write: (chunk: string) => void (text += chunk), isTTY: false, text: () => text };
};

it('shows a failed image\'s error without its control characters', async () => {
  const totals = { images: 1, imagesDone: 1, blobs: 0, blobsDone: 0, bytes: 0 };
  const port = await adminApi((res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write(`${JSON.stringify({ event: 'image-failed', image: 'registry.test/app:1', error: HOSTILE, totals })}\n`);
    res.end(`${JSON.stringify({ event: 'summary', ok: [], failed: [{ image: 'registry.test/app:1', error: HOSTILE }], stopped: false, totals })}\n`);
  });
  const out = sink();
  const err = sink();
  await prefetchCommand(configFor(port), ['registry.test/app:1'], { referrers: false, platform: undefined }, out, err).catch(() => undefined);
  const shown = out.text() + err.text();
  expect(shown).toContain('manifest unknown');
  expect(shown).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
});

it('shows a refusal\'s text without its control characters', async () => {
  const port = await adminApi((res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: HOSTILE }] }));
  });
  const error = await prefetchCommand(configFor(port), ['registry.test/app:1'], { referrers: false, platform: undefined }, sink(), sink()).catch((e: Error) => e);
  expect(String((error as Error).message)).toContain('UNAVAILABLE: manifest unknown');
  expect(String((error as Error).message)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
});
