/**
 * Regression test: a request head that names two destinations. Node keeps the first of two Host
 * headers (and fastify prefers `host` over HTTP/2's `:authority`), while a proxy in front, a log
 * reader or the upstream may read the other one; an absolute-form target (`GET https://other/ HTTP/1.1`)
 * was answered with a 500 when it named another host, and when it named the Host it skipped the
 * blob cache and its digest check (the routes did not recognise the path). src/proxy/request-guards.ts
 * refuses all of these with 400 and an OCI error body, closes the connection, and sends nothing
 * upstream; an absolute-form target naming the Host is served exactly like its path. The same guard
 * keeps a request whose last transfer coding is not chunked (no knowable body length) from starting
 * an upstream request before Node's parser refuses it (refuses-unknown-transfer-coding).
 * The whole app (buildApp on loopback) with the hostile-upstream fixture and dnsmasq.
 */
import { rmSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { dirname } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { PASSWORD, startHostileUpstream, UPSTREAM_HOST, USER, type HostileUpstream } from './hostile-upstream.js';

let upstream: HostileUpstream;
let dns: Dnsmasq;
let layover: RunningLayover;
let layoverH2: RunningLayover;
/** `hostile.test:<port>`: the registry's name as clients write it in Host. */
let authority: string;

beforeAll(async () => {
  upstream = await startHostileUpstream();
  dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'], 'other.test': ['127.0.0.2'] } });
  authority = `${UPSTREAM_HOST}:${upstream.port}`;
  const flags = { registries: authority, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': upstream.ca.certFile };
  const env = { AUTH_REGISTRIES: `${authority}|${USER}|${PASSWORD}`, AUTH_REGISTRY_DELIMITER: '|' };
  layover = await startLayover(flags, env);
  // No registry port for the second one: it serves the registry on its main listener only (via Host).
  layoverH2 = await startLayover({ ...flags, http2: true, registries: UPSTREAM_HOST }, { AUTH_REGISTRIES: `${UPSTREAM_HOST}|${USER}|${PASSWORD}`, AUTH_REGISTRY_DELIMITER: '|' });
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await layoverH2?.close();
  await dns?.stop();
  await upstream?.close();
  // The helpers leave their temp dirs (data dirs, the fixture's CA): this file removes its own.
  for (const dir of [layover?.dataDir, layoverH2?.dataDir, upstream && dirname(dirname(upstream.ca.certFile))]) if (dir) rmSync(dir, { recursive: true, force: true });
});

interface RawReply {
  text: string;
  /** The server closed the connection before `waitMs`. */
  closed: boolean;
}

/** Raw bytes to Layover (TLS on the registry's port, or plain TCP); everything until close or `waitMs`. */
function raw(bytes: string, options: { port?: number; tls?: boolean; waitMs?: number } = {}): Promise<RawReply> {
  const { port = upstream.port, tls = true, waitMs = 3000 } = options;
  return new Promise((resolve) => {
    const socket = tls
      ? tlsConnect({ host: '127.0.0.1', port, servername: UPSTREAM_HOST, ca: layover.app.ca.certPem }, () => socket.write(bytes))
      : netConnect(port, '127.0.0.1', () => socket.write(bytes));
    let text = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => done(true));
  });
}

const body = (reply: RawReply): string => reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4);
const ociCode = (text: string): string | undefined => (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]?.code;
const seenSince = (from: number): string[] => upstream.seen.slice(from).map((r) => `${r.method} ${r.url}`);

/** A refusal: 400, an OCI error body, the connection closed (no keep-alive was asked to end), nothing upstream. */
async function expectRefused(head: string, options?: Parameters<typeof raw>[1]): Promise<void> {
  const before = upstream.seen.length;
  const reply = await raw(head, options);
  expect(reply.text, head).toMatch(/^HTTP\/1\.1 400 /);
  expect(ociCode(body(reply)), reply.text).toBe('UNSUPPORTED');
  expect(reply.closed, 'connection closed').toBe(true);
  expect(reply.text.match(/HTTP\/1\.1 /g), 'one response only').toHaveLength(1);
  expect(seenSince(before)).toEqual([]);
}

/** Waits until the upstream has seen nothing new for 300 ms: a miss may lead to requests after its response (access records). */
async function upstreamQuiet(): Promise<void> {
  let seen: number;
  do {
    seen = upstream.seen.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  } while (upstream.seen.length !== seen);
}

function getBlob(path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: upstream.port, servername: UPSTREAM_HOST, ca: layover.app.ca.certPem, path, headers: { host: authority }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('refuses-duplicate-host', () => {
  it('one Host header is served (control)', async () => {
    const reply = await getBlob(`/v2/library/app/blobs/${upstream.blob.digest}`);
    expect(reply.status).toBe(200);
    expect(reply.body.equals(upstream.blob.bytes)).toBe(true);
    await upstreamQuiet();
  });

  it.each([
    ['another name first', () => `Host: other.test:${upstream.port}\r\nHost: ${authority}`],
    ['the registry first', () => `Host: ${authority}\r\nHost: other.test:${upstream.port}`],
    ['the same name twice', () => `Host: ${authority}\r\nHost: ${authority}`],
    ['spelt in two cases', () => `host: ${authority}\r\nHOST: ${authority}`],
    ['a list in one header', () => `Host: ${authority}, other.test`],
  ])('two Hosts (%s): 400 UNSUPPORTED, connection closed, nothing upstream', async (_case, hosts) => {
    await expectRefused(`GET /v2/library/app/blobs/${upstream.blob.digest} HTTP/1.1\r\n${hosts()}\r\n\r\n`);
  });

  it('on the main TLS listener and the plain HTTP listener too', async () => {
    await expectRefused(`GET /v2/ HTTP/1.1\r\nHost: ${authority}\r\nHost: docker.proxy\r\n\r\n`, { port: layover.addresses.https.port });
    await expectRefused(`GET /ca.crt HTTP/1.1\r\nHost: docker.proxy\r\nHost: 127.0.0.1\r\n\r\n`, { port: layover.addresses.http!.port, tls: false });
  });

  it('an absolute-form target naming another host: 400, nothing upstream', async () => {
    await expectRefused(`GET https://other.test:${upstream.port}/v2/ HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    await expectRefused(`GET https://evil.example/v2/library/app/blobs/${upstream.blob.digest} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    await expectRefused(`GET https://${authority}@evil.example/v2/ HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });

  it('targets that are neither a path nor an absolute URL: 400', async () => {
    await expectRefused(`GET //evil.example/v2/ HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    await expectRefused(`GET * HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    await expectRefused(`OPTIONS * HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });

  it('an absolute-form target naming the Host is served like its path: through the blob cache', async () => {
    const path = `/v2/library/app/blobs/${upstream.blob.digest}`;
    const first = await getBlob(path);
    expect(first.status).toBe(200);
    expect(first.body.equals(upstream.blob.bytes)).toBe(true);
    const before = upstream.seen.length;
    const reply = await raw(`GET https://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`, { waitMs: 5000 });
    expect(reply.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(Buffer.from(body(reply), 'latin1').equals(upstream.blob.bytes)).toBe(true);
    // A hit: the upstream was not asked again (before the guard, the path went through as a pass-through GET).
    expect(seenSince(before)).toEqual([]);
    // Dot segments in the absolute form are still refused by the registry routes.
    const dots = await raw(`GET https://${authority}/v2/library/../x/blobs/${upstream.blob.digest} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
    expect(dots.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(ociCode(body(dots))).toBe('NAME_INVALID');
    expect(seenSince(before)).toEqual([]);
  });

  it('HTTP/2: a host header that disagrees with :authority gets 400', async () => {
    const session = http2Connect(`https://127.0.0.1:${layoverH2.addresses.https.port}`, { servername: UPSTREAM_HOST, ca: layoverH2.app.ca.certPem });
    try {
      const ask = (headers: Record<string, string>): Promise<{ status: number; text: string }> =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':path': '/v2/', ':authority': UPSTREAM_HOST, ...headers });
          let text = '';
          let status = 0;
          stream.on('response', (h) => (status = Number(h[':status'])));
          stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
          stream.on('end', () => resolve({ status, text }));
          stream.on('error', reject);
          stream.end();
        });
      const before = upstream.seen.length;
      const mismatch = await ask({ host: 'other.test' });
      expect(mismatch.status, mismatch.text).toBe(400);
      expect(ociCode(mismatch.text)).toBe('UNSUPPORTED');
      expect(seenSince(before)).toEqual([]);
      // The control: the same stream shape with an agreeing host passes the guard to the registry's
      // ping, which goes upstream; this Layover's upstream (port 443) never answered, so the ping says so.
      const agreeing = await ask({ host: UPSTREAM_HOST });
      expect(agreeing.status, agreeing.text).toBe(503);
      expect(ociCode(agreeing.text)).toBe('UNAVAILABLE');
    } finally {
      session.close();
    }
  });
});

describe('refuses-unknown-transfer-coding', () => {
  it.each([
    ['xchunked', 'Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'],
    ['gzip, body later', 'Transfer-Encoding: gzip\r\n\r\n'],
    ['chunked then identity in one line', 'Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
  ])('%s: one 400, the connection closed, and the upstream never asked', async (_case, tail) => {
    const before = upstream.seen.length;
    const reply = await raw(`GET /v2/library/app/manifests/good HTTP/1.1\r\nHost: ${authority}\r\n${tail}`);
    expect(reply.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply.text.match(/HTTP\/1\.1 /g), 'one response only').toHaveLength(1);
    expect(reply.closed).toBe(true);
    // Give a request that did start time to reach the upstream before looking.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seenSince(before)).toEqual([]);
  });
});
