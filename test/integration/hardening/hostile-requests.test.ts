/**
 * Issue 5, hostile input against the whole app (buildApp on loopback): paths, names, digests, Range
 * values, headers, smuggling shapes, slow clients, TLS garbage and a lying upstream. Each gets a clear
 * error (4xx/5xx with an OCI error body, or a closed connection), never reaches the upstream when it
 * should not, and afterwards Layover still serves and its cache is intact. The last test greps every
 * log line of the file for the credentials and tokens used along the way.
 */
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Digest } from '../../../src/registry/digest.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { MANIFEST_TYPE, PASSWORD, startHostileUpstream, UPSTREAM_HOST, USER, type HostileUpstream } from './hostile-upstream.js';

const CLIENT_TOKEN = 'client-bearer-t0ken-xyz';
const QUERY_TOKEN = 'query-t0ken-abc';
const HEADER_TIMEOUT_MS = 1000;
/** it.each's table is built before beforeAll runs: the blob's digest is filled in per case. */
const PLACEHOLDER = '<blob-digest>';

let upstream: HostileUpstream;
let dns: Dnsmasq;
let layover: RunningLayover;

beforeAll(async () => {
  upstream = await startHostileUpstream();
  dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'] } });
  layover = await startLayover(
    {
      registries: `${UPSTREAM_HOST}:${upstream.port}`,
      'upstream-dns': `${dns.host}:${dns.port}`,
      'upstream-ca': upstream.ca.certFile,
    },
    {
      CLIENT_HEADER_TIMEOUT: `${HEADER_TIMEOUT_MS}ms`,
      AUTH_REGISTRIES: `${UPSTREAM_HOST}:${upstream.port}|${USER}|${PASSWORD}`,
      AUTH_REGISTRY_DELIMITER: '|',
    },
  );
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await dns?.stop();
  await upstream?.close();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTPS request to Layover's listener for the fixture's name; `path` is sent exactly as given. */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: upstream.port, servername: UPSTREAM_HOST, ca: layover.app.ca.certPem, method, path, headers: { host: `${UPSTREAM_HOST}:${upstream.port}`, ...headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Raw bytes over TLS; resolves with everything the server sent until it closed (or `waitMs` passed). */
function raw(bytes: Buffer | string, waitMs = 5000, servername = UPSTREAM_HOST): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = tlsConnect({ host: '127.0.0.1', port: upstream.port, servername, ca: layover.app.ca.certPem }, () => socket.write(bytes));
    let text = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => done(true));
  });
}

const ociCode = (reply: Reply): string | undefined => {
  try {
    return (JSON.parse(reply.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
};

/** Nothing but these reached the upstream since `from`. */
const upstreamUrlsSince = (from: number): string[] => upstream.seen.slice(from).map((r) => `${r.method} ${r.url}`);

/** The control: the cached blob is still served, from the cache, byte for byte. */
async function expectServingAndCacheIntact(): Promise<void> {
  const before = upstream.seen.length;
  const blob = await get(`/v2/library/app/blobs/${upstream.blob.digest}`);
  expect(blob.status).toBe(200);
  expect(blob.body.equals(upstream.blob.bytes)).toBe(true);
  const manifest = await get(`/v2/library/app/manifests/${upstream.manifest.digest}`, { accept: MANIFEST_TYPE });
  expect(manifest.status).toBe(200);
  expect(manifest.body.equals(upstream.manifest.bytes)).toBe(true);
  expect(upstreamUrlsSince(before)).toEqual([]);
}

describe('hostile requests against the whole app', () => {
  it('(control) fills the cache with a blob and a manifest by digest', async () => {
    expect((await get(`/v2/library/app/blobs/${upstream.blob.digest}`)).status).toBe(200);
    expect((await get(`/v2/library/app/manifests/${upstream.manifest.digest}`, { accept: MANIFEST_TYPE })).status).toBe(200);
    // Manifests are stored after they are sent: wait for both entries.
    await vi.waitFor(() => expect([layover.app.cache.stat(upstream.blob.digest as Digest), layover.app.cache.stat(upstream.manifest.digest as Digest)].every(Boolean)).toBe(true));
    await expectServingAndCacheIntact();
  });

  const d = PLACEHOLDER;
  it.each([
    ['.. segments', `/v2/library/../../etc/blobs/${d}`],
    ['.. as the whole name', `/v2/../blobs/${d}`],
    ['%2e%2e segments', `/v2/library/%2e%2e/%2E%2E/blobs/${d}`],
    ['%2f inside a name', `/v2/library%2f..%2fx/manifests/latest`],
    ['upper-case name', '/v2/Library/App/manifests/latest'],
    ['name with doubled separators', '/v2/a__-b/manifests/latest'],
    ['name starting with a separator', '/v2/-a/manifests/latest'],
    ['name with a space', '/v2/a%20b/manifests/latest'],
    ['over-long name', `/v2/${'a'.repeat(300)}/manifests/latest`],
    ['very long path', `/v2/${'a/'.repeat(4000)}manifests/latest`],
    ['over-long tag', `/v2/library/app/manifests/${'t'.repeat(200)}`],
    ['invalid digest hex', `/v2/library/app/blobs/sha256:${'z'.repeat(64)}`],
    ['unsupported algorithm', `/v2/library/app/blobs/md5:${'0'.repeat(32)}`],
    ['unknown algorithm', `/v2/library/app/blobs/sha999:${'0'.repeat(64)}`],
    ['sha256 too short', `/v2/library/app/blobs/sha256:${'0'.repeat(63)}`],
    ['sha256 too long', `/v2/library/app/blobs/sha256:${'0'.repeat(65)}`],
    ['sha512 with a sha256 length', `/v2/library/app/blobs/sha512:${'0'.repeat(64)}`],
    ['upper-case hex', `/v2/library/app/blobs/sha256:${'A'.repeat(64)}`],
    ['manifest digest with wrong length', `/v2/library/app/manifests/sha256:${'0'.repeat(10)}`],
  ])('%s: a 4xx OCI error, nothing sent upstream', async (_case, path) => {
    const before = upstream.seen.length;
    const reply = await get(path.replace(PLACEHOLDER, upstream.blob.digest));
    expect(reply.status, reply.body.toString()).toBeGreaterThanOrEqual(400);
    expect(reply.status).toBeLessThan(500);
    expect(ociCode(reply), reply.body.toString()).toBeTypeOf('string');
    expect(upstreamUrlsSince(before)).toEqual([]);
  });

  it('absurd Range values: 416 or the whole blob, never a crash or wrong bytes', async () => {
    const path = `/v2/library/app/blobs/${upstream.blob.digest}`;
    const size = upstream.blob.bytes.length;
    const ranges = [
      'bytes=99999999999999999999999999-',
      `bytes=${size}-`,
      'bytes=5-1',
      'bytes=-0',
      'bytes=--1',
      'bytes=0-1e9',
      'bytes=0x10-0x20',
      'items=0-10',
      `bytes=${Array.from({ length: 300 }, (_, i) => `${i}-${i}`).join(',')}`,
      'bytes=0-18446744073709551616',
    ];
    for (const range of ranges) {
      const reply = await get(path, { range });
      expect([200, 206, 416], `${range}: ${reply.status}`).toContain(reply.status);
      if (reply.status === 200) expect(reply.body.equals(upstream.blob.bytes)).toBe(true);
      if (reply.status === 206) {
        const [, start, end] = /bytes (\d+)-(\d+)\//.exec(String(reply.headers['content-range'])) ?? [];
        expect(reply.body.equals(upstream.blob.bytes.subarray(Number(start), Number(end) + 1)), range).toBe(true);
      }
    }
    await expectServingAndCacheIntact();
  });

  it('oversized and duplicated headers get 431/400; a second Host never reaches its registry', async () => {
    const head = (extra: string) => `GET /v2/ HTTP/1.1\r\nHost: ${UPSTREAM_HOST}\r\nConnection: close\r\n${extra}\r\n`;
    const big = (await raw(head(`X-Big: ${'a'.repeat(64 * 1024)}\r\n`))).text;
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(big.split('\r\n\r\n')[1]!)).toMatchObject({ errors: [{ code: 'SIZE_INVALID' }] });
    expect((await raw(head(`X-Many: a\r\n`.repeat(3000)))).text).toMatch(/^HTTP\/1\.1 431 /);
    // Two Hosts are refused with 400 (src/proxy/request-guards.ts); neither name is where the request goes.
    const before = upstream.seen.length;
    const twoHosts = await raw(`GET /v2/ HTTP/1.1\r\nHost: not-intercepted.example\r\nHost: ${UPSTREAM_HOST}\r\nConnection: close\r\n\r\n`);
    expect(twoHosts.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(upstreamUrlsSince(before)).toEqual([]);
    expect((await raw(head(`Content-Length: 1\r\nContent-Length: 2\r\n`))).text).toMatch(/^HTTP\/1\.1 400 /);
    await expectServingAndCacheIntact();
  });

  it('request smuggling shapes (Transfer-Encoding with Content-Length, obfuscated TE) are refused with 400', async () => {
    const before = upstream.seen.length;
    const smuggled = `GET /v2/library/app/manifests/good HTTP/1.1\r\nHost: ${UPSTREAM_HOST}\r\n`;
    const shapes = [
      `${smuggled}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2/library/app/manifests/huge HTTP/1.1\r\n\r\n`,
      `${smuggled}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`,
      `${smuggled}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
      `${smuggled}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    ];
    for (const shape of shapes) {
      const reply = await raw(shape);
      expect(reply.text, shape).toMatch(/^HTTP\/1\.1 400 /);
      expect(reply.text.match(/HTTP\/1\.1 /g), 'one response only').toHaveLength(1);
      expect(JSON.parse(reply.text.split('\r\n\r\n')[1]!), shape).toHaveProperty('errors.0.code');
    }
    expect(upstreamUrlsSince(before)).toEqual([]);
    await expectServingAndCacheIntact();
  });

  it('a slow-loris client is cut off by CLIENT_HEADER_TIMEOUT while others are served', async () => {
    const slow = raw(`GET /v2/ HTTP/1.1\r\nHost: ${UPSTREAM_HOST}\r\nX-Slow: `, 60_000);
    await expectServingAndCacheIntact();
    const result = await slow;
    expect(result.closed).toBe(true);
    expect(result.ms).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS * 0.9);
    // Node enforces headersTimeout on its connectionsCheckingInterval sweep; app.ts sets it to a
    // quarter of the timeout (the default 30 s let a slow client stay 30 s). Generous margin for load.
    expect(result.ms).toBeLessThan(HEADER_TIMEOUT_MS + 5_000);
    await expectServingAndCacheIntact();
  }, 30_000);

  it('TLS garbage, a non-intercepted SNI and odd names on the full app: no mint, still serving', async () => {
    const mintsBefore = layover.logs.filter((l) => /mint/i.test(l.msg)).length;
    for (const garbage of [Buffer.alloc(4096, 0x41), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01])]) {
      await new Promise<void>((resolve) => {
        const s = netConnect(layover.addresses.https.port, '127.0.0.1', () => s.end(garbage));
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.resume();
      });
    }
    for (const servername of ['not-intercepted.example', 'x'.repeat(63) + '.example', 'a_b.hostile.test']) {
      const reply = await raw(`GET /v2/ HTTP/1.1\r\nHost: ${servername}\r\n\r\n`, 5000, servername).catch(() => null);
      expect(reply === null || !/^HTTP\/1\.1 200 /.test(reply.text)).toBe(true);
    }
    expect(layover.logs.filter((l) => /mint/i.test(l.msg)).length).toBe(mintsBefore);
    await expectServingAndCacheIntact();
  });
});

describe('Layover\'s upstream credentials', () => {
  it('go only with requests for a repository: not to another API on the registry\'s host, nor to the catalog', async () => {
    const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    for (const path of ['/api/v4/projects', '/service/rest/v1/repositories', '/v2/_catalog']) {
      const reply = await get(path);
      const seen = upstream.seen.filter((r) => r.url === path);
      expect(seen, path).toHaveLength(1);
      expect(seen[0]!.headers.authorization, path).toBeUndefined();
      // The private registry's refusal, as it came.
      expect(reply.status, path).toBe(401);
    }
    // A repository's requests still carry them.
    await get('/v2/library/app/tags/list');
    expect(upstream.seen.find((r) => r.url === '/v2/library/app/tags/list')?.headers.authorization).toBe(basic);
  });
});

describe('a lying upstream', () => {
  it('a manifest whose Docker-Content-Digest does not match its bytes is refused and not cached', async () => {
    const byTag = await get('/v2/library/app/manifests/lying-header', { accept: MANIFEST_TYPE });
    expect(byTag.status, byTag.body.toString()).toBeGreaterThanOrEqual(500);
    const byDigest = await get(`/v2/library/app/manifests/${upstream.mismatchedDigest}`, { accept: MANIFEST_TYPE });
    expect(byDigest.status, byDigest.body.toString()).toBeGreaterThanOrEqual(400);
    expect(byDigest.body.equals(upstream.manifest.bytes)).toBe(false);
    // Not cached: asking again goes upstream again.
    const before = upstream.seen.length;
    await get(`/v2/library/app/manifests/${upstream.mismatchedDigest}`, { accept: MANIFEST_TYPE });
    expect(upstreamUrlsSince(before).length).toBeGreaterThan(0);
    await expectServingAndCacheIntact();
  });

  it('a blob whose bytes do not match its digest is never served whole nor cached, and counts as the upstream\'s error (cause digest)', async () => {
    const digestErrors = async (): Promise<number> =>
      (await layover.app.metrics.upstreamErrors.get()).values.filter((v) => v.labels.cause === 'digest').reduce((sum, v) => sum + v.value, 0);
    const before = await digestErrors();
    const reply = await get(`/v2/library/app/blobs/${upstream.mismatchedDigest}`).catch((error: Error) => ({ status: 0, body: Buffer.from(error.message) }));
    // The last chunk is held back until the digest matched: the client sees an error or a cut-off body, never a complete 200.
    expect(reply.status === 200 && reply.body.length === upstream.blob2.bytes.length).toBe(false);
    await vi.waitFor(async () => expect(await digestErrors()).toBe(before + 1));
    expect(layover.app.cache.stat(upstream.mismatchedDigest as Digest)).toBeUndefined();
    await expectServingAndCacheIntact();
  });

  it('passes an upstream\'s Retry-After on only when it is delta-seconds or a date', async () => {
    const usable = await get(`/v2/library/limited/blobs/sha256:${'ab'.repeat(32)}`);
    expect(usable.status).toBe(429);
    expect(usable.headers['retry-after']).toBe('120');
    const garbage = await get(`/v2/library/limited-badly/blobs/sha256:${'cd'.repeat(32)}`);
    expect(garbage.status).toBe(429);
    expect(garbage.headers['retry-after']).toBeUndefined();
  });

  it('does-not-pass-upstream-hop-by-hop-headers: the upstream\'s Connection and Keep-Alive stay between Layover and the upstream', async () => {
    // The fixture (a Node server) answers keep-alive requests with Keep-Alive: timeout=5; Layover's own is KEEPALIVE_TIMEOUT.
    const kept = await raw(`GET /v2/ HTTP/1.1\r\nHost: ${UPSTREAM_HOST}:${upstream.port}\r\n\r\n`, 1000);
    const keptHead = kept.text.split('\r\n\r\n')[0]!.toLowerCase();
    expect(keptHead).toMatch(/^http\/1\.1 (200|401) /);
    expect(keptHead).not.toContain('keep-alive: timeout=5');
    const closing = await raw(`GET /v2/ HTTP/1.1\r\nHost: ${UPSTREAM_HOST}:${upstream.port}\r\nConnection: close\r\n\r\n`);
    expect(closing.text.split('\r\n\r\n')[0]!.toLowerCase()).toMatch(/^http\/1\.1 (200|401) [^]*connection: close/);
    expect(closing.closed).toBe(true);
  });

  it('a manifest larger than 4 MiB is refused with an error, and nothing is cached', async () => {
    const reply = await get('/v2/library/app/manifests/huge', { accept: MANIFEST_TYPE });
    expect(reply.status, reply.body.toString().slice(0, 200)).toBeGreaterThanOrEqual(400);
    expect(reply.body.length).toBeLessThan(64 * 1024);
    expect(ociCode(reply)).toBeTypeOf('string');
    await expectServingAndCacheIntact();
  });
});

describe('secrets', () => {
  it('no credential, token or signed query string in any log line of this file', async () => {
    // Requests that carry secrets of their own, on top of the upstream password Layover sends.
    await get(`/v2/library/app/manifests/good?token=${QUERY_TOKEN}`, { authorization: `Bearer ${CLIENT_TOKEN}`, accept: MANIFEST_TYPE });
    await get(`/v2/../x?access_token=${QUERY_TOKEN}&X-Amz-Signature=${QUERY_TOKEN}`, { 'proxy-authorization': `Basic ${CLIENT_TOKEN}` });
    // Layover did send the password upstream, so the grep below is not vacuous.
    const basic = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    expect(upstream.seen.some((r) => r.headers.authorization === `Basic ${basic}`)).toBe(true);
    await vi.waitFor(() => expect(layover.logs.some((l) => JSON.stringify(l).includes('access_token'))).toBe(true));
    const text = layover.logs.map((l) => JSON.stringify(l)).join('\n');
    for (const secret of [PASSWORD, basic, CLIENT_TOKEN, QUERY_TOKEN]) expect(text).not.toContain(secret);
  });
});
