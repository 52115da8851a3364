/**
 * Fixture upstream for the blob-path tests: a tiny anonymous registry on 127.0.0.7 whose answers the
 * test holds and releases. No real program can be paused on demand in the middle of a body, or made to
 * serve wrong bytes for a digest (the distribution registry verifies what it stores), so this is a
 * fixture; Layover, its resolver (dnsmasq), TLS and the clients are real.
 *
 * One blob of 2 MiB, served under the repository that names the behaviour:
 *   ok/...       the right bytes
 *   wrong/...    bytes of other content, right length (the first and last bytes differ from the right ones)
 *   redirect/... a 307 to `/storage/<digest>?X-Amz-Signature=…` on its own origin, which serves the right bytes
 *   chunked/...  the right bytes without Content-Length (chunked); chunked-redirect/... a redirect to
 *                storage that answers so; endless-redirect/... a redirect whose own body never ends
 * and one manifest, as ok/<name>/manifests/v1 or by its digest (MANIFEST_DIGEST).
 * While `holdBodies()` is on, a GET sends all but the last 64 KiB and waits for `release()`; while
 * `holdHeads()` is on, a HEAD waits for `release()` before it is answered, and while `holdGets()` is
 * on, so does a GET (headers and all); while `holdFirstBytes()` is on, a GET sends its headers and
 * waits before its first byte; while `holdManifestBodies()` is on, a manifest GET stops one byte short. `cut()` ends every held answer by closing its connection. Every answer
 * carries headers a registry may send but a client of Layover must not see from one upstream only:
 * `Set-Cookie`, `Content-Encoding: identity`, an upstream `ETag`, and one of its own.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Digest } from '../../../src/registry/digest.js';
import { createTestCa } from '../../bench/test-ca.js';
import { type Dnsmasq, startDnsmasq } from '../../helpers/dnsmasq.js';
import { listenWithLoopbackTwin, releaseLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

export const HELD_HOST = 'held.test';
export const HELD_ADDRESS = '127.0.0.7';
export const HELD_BLOB_SIZE = 2 * 1024 * 1024;
const HELD_TAIL = 64 * 1024;

export const UPSTREAM_ONLY_HEADERS = {
  'set-cookie': 'upstream-session=s3cr3t-cookie; Path=/; HttpOnly',
  'content-encoding': 'identity',
  etag: '"upstream-etag"',
  'x-upstream-only': 'yes',
};

/** Headers every answer names as hop-by-hop, in two Connection headers (which arrive as an array). */
export const HOP_HEADERS = { 'x-hop-a': 'for the next hop only', 'x-hop-b': 'for the next hop only' };

/** What `ok/app/manifests/v1` and `ok/app/manifests/<its digest>` answer. */
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 }, layers: [] }));
export const MANIFEST_DIGEST = `sha256:${createHash('sha256').update(MANIFEST).digest('hex')}` as Digest;

export interface SeenRequest {
  method: string;
  url: string;
  /** Set when the answer's connection closed (or the answer ended). */
  closed?: true;
}

export interface HeldUpstream {
  port: number;
  caFile: string;
  blob: { digest: Digest; bytes: Buffer };
  /** What `wrong/...` sends for the blob. */
  wrongBytes: Buffer;
  seen: SeenRequest[];
  /** From now on, GET bodies stop short of their last 64 KiB until release(). */
  holdBodies(): void;
  /** From now on, HEADs wait for release() before they are answered. */
  holdHeads(): void;
  /** From now on, blob GETs wait for release() before anything of them is sent. */
  holdGets(): void;
  /** From now on, blob GETs send their headers at once and wait for release() before the first byte of the body. */
  holdFirstBytes(): void;
  /** From now on, manifest GETs send all but the manifest's last byte and wait for release(). */
  holdManifestBodies(): void;
  /** Closes the connection of every held answer (nothing more of them is sent) and stops holding new ones. */
  cut(): void;
  /** Ends every held answer and stops holding new ones. */
  release(): void;
  /** Resolves once `count` answers are being held. */
  held(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startHeldUpstream(): Promise<HeldUpstream> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-held-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('held', [HELD_HOST]);
  const bytes = randomBytes(HELD_BLOB_SIZE);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  const wrongBytes = randomBytes(HELD_BLOB_SIZE);
  const seen: SeenRequest[] = [];
  let holdingBodies = false;
  let holdingHeads = false;
  let holdingGets = false;
  let holdingFirstBytes = false;
  let holdingManifestBodies = false;
  /** Each held answer: how to finish it, and how to cut it off instead. */
  let waiting: Array<{ finish: () => void; cut: () => void }> = [];
  let heldWatchers: Array<() => void> = [];
  const hold = (finish: () => void, cut: () => void): void => {
    waiting.push({ finish, cut });
    for (const watch of heldWatchers) watch();
  };

  const server = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    const url = req.url ?? '';
    const asked: SeenRequest = { method: req.method ?? '', url };
    seen.push(asked);
    res.once('close', () => (asked.closed = true));
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    for (const [name, value] of Object.entries(UPSTREAM_ONLY_HEADERS)) res.setHeader(name, value);
    for (const [name, value] of Object.entries(HOP_HEADERS)) res.setHeader(name, value);
    res.setHeader('connection', Object.keys(HOP_HEADERS));
    if (url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{}');
    }
    // Like a registry whose blobs live on a storage host (here its own origin, which Layover may reach): a signed redirect.
    const redirect = /^\/v2\/(redirect|chunked-redirect|endless-redirect)\/[^?]*\/blobs\/([^/?]+)$/.exec(url);
    if (redirect && redirect[2] === digest) {
      const chunked = redirect[1] === 'chunked-redirect' ? '&chunked=1' : '';
      const location = `/storage/${digest}?X-Amz-Signature=held-${seen.length}${chunked}`;
      if (redirect[1] !== 'endless-redirect') {
        res.writeHead(307, { location, 'content-length': '0' });
        return res.end();
      }
      // A body that never ends: nothing but the reader stops it.
      res.writeHead(307, { location, 'content-type': 'text/html' });
      const drip = setInterval(() => res.write(Buffer.alloc(16 * 1024, 0x20)), 2);
      return void res.once('close', () => clearInterval(drip));
    }
    // A tag list compressed when the client takes gzip, as a registry behind a compressing front may send it.
    if (url === '/v2/ok/app/tags/list') {
      const list = Buffer.from(JSON.stringify({ name: 'ok/app', tags: ['v1'] }));
      const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      const body = gzip ? gzipSync(list) : list;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length), 'content-encoding': gzip ? 'gzip' : 'identity' });
      return res.end(body);
    }
    const manifest = /^\/v2\/ok\/[a-z]+\/manifests\/([^/?]+)$/.exec(url);
    if (manifest && (manifest[1] === 'v1' || manifest[1] === MANIFEST_DIGEST)) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(MANIFEST.length), 'docker-content-digest': MANIFEST_DIGEST });
      if (req.method === 'HEAD' || !holdingManifestBodies) return res.end(req.method === 'HEAD' ? undefined : MANIFEST);
      res.write(MANIFEST.subarray(0, -1));
      return hold(() => res.end(MANIFEST.subarray(-1)), () => void res.destroy());
    }
    const storage = /^\/storage\/([^/?]+)\?/.exec(url);
    const mode = storage ? [url, url.endsWith('&chunked=1') ? 'chunked' : 'ok', storage[1]] : /^\/v2\/(ok|wrong|chunked)\/[^?]*\/blobs\/([^/?]+)$/.exec(url);
    if (!mode || mode[2] !== digest) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
    }
    const body = mode[1] === 'wrong' ? wrongBytes : bytes;
    const length = mode[1] === 'chunked' ? {} : { 'content-length': String(body.length) };
    const headers = { 'content-type': 'application/octet-stream', ...length, 'docker-content-digest': digest };
    const cutOff = (): void => void res.destroy();
    if (req.method === 'HEAD') {
      const answer = (): void => void res.writeHead(200, headers).end();
      return holdingHeads ? hold(answer, cutOff) : answer();
    }
    const answer = (): void => {
      res.writeHead(200, headers);
      if (holdingFirstBytes) {
        res.flushHeaders();
        return hold(() => void res.end(body), cutOff);
      }
      if (!holdingBodies) return void res.end(body);
      res.write(body.subarray(0, body.length - HELD_TAIL));
      hold(() => res.end(body.subarray(body.length - HELD_TAIL)), cutOff);
    };
    if (holdingGets) return hold(answer, cutOff);
    answer();
  });
  const port = await listenWithLoopbackTwin(server, HELD_ADDRESS);
  /** Stops holding new answers and ends every held one, finished or cut off. */
  const endHeld = (how: 'finish' | 'cut'): void => {
    holdingBodies = false;
    holdingHeads = false;
    holdingGets = false;
    holdingFirstBytes = false;
    holdingManifestBodies = false;
    const held = waiting;
    waiting = [];
    for (const answer of held) answer[how]();
  };
  const release = (): void => endHeld('finish');
  return {
    port,
    caFile: ca.certFile,
    blob: { digest, bytes },
    wrongBytes,
    seen,
    holdBodies: () => void (holdingBodies = true),
    holdHeads: () => void (holdingHeads = true),
    holdGets: () => void (holdingGets = true),
    holdFirstBytes: () => void (holdingFirstBytes = true),
    holdManifestBodies: () => void (holdingManifestBodies = true),
    cut: () => endHeld('cut'),
    release,
    held: (count) =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (waiting.length < count) return;
          heldWatchers = heldWatchers.filter((watch) => watch !== check);
          resolve();
        };
        heldWatchers.push(check);
        check();
      }),
    close: () =>
      new Promise<void>((resolve) => {
        release();
        void releaseLoopbackTwin(port);
        server.close(() => resolve());
        server.closeAllConnections();
        rmSync(dir, { recursive: true, force: true });
      }),
  };
}

export interface AskOptions {
  method?: string;
  /** The TLS name and Host asked for (another name Layover serves, such as a custom domain); held.test by default. */
  servername?: string;
  headers?: Record<string, string>;
  /** Called when the answer's status and headers have arrived, before its body. */
  onResponse?: () => void;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** False when the connection was cut before the body ended. */
  complete: boolean;
}

export interface HeldBench {
  upstream: HeldUpstream;
  layover: RunningLayover;
  /** One request to Layover as `held.test`, on a connection of its own. */
  ask(path: string, options?: AskOptions): Promise<Answer>;
  close(): Promise<void>;
}

/** The fixture, dnsmasq naming it, and Layover (in this process) intercepting it; flags may depend on the fixture's port. */
export async function startHeldBench(flags: Record<string, string> | ((upstreamPort: number) => Record<string, string>) = {}): Promise<HeldBench> {
  const upstream = await startHeldUpstream();
  let dns: Dnsmasq | undefined;
  let layover: RunningLayover | undefined;
  const close = async (): Promise<void> => {
    await layover?.close();
    await dns?.stop();
    await upstream.close();
  };
  try {
    dns = await startDnsmasq({ hostRecords: { [HELD_HOST]: [HELD_ADDRESS] } });
    const extra = typeof flags === 'function' ? flags(upstream.port) : flags;
    layover = await startLayover({ registries: `${HELD_HOST}:${upstream.port}`, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': upstream.caFile, ...extra });
  } catch (error) {
    await close();
    throw error;
  }
  const ca = layover.app.ca.certPem;
  const ask = (path: string, options: AskOptions = {}): Promise<Answer> => askHeld(upstream.port, '127.0.0.1', ca, path, options);
  return { upstream, layover, ask, close };
}

/** One request as `held.test` to a Layover listening at `address`:`port` (the fixture's port), trusting `caPem`, on a connection of its own. */
export function askHeld(port: number, address: string, caPem: string, path: string, options: AskOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const servername = options.servername ?? HELD_HOST;
    const headers = { host: `${servername}:${port}`, ...options.headers };
    const req = httpsRequest({ host: address, port, servername, ca: caPem, method: options.method ?? 'GET', path, headers, agent: false }, (res) => {
      options.onResponse?.();
      const chunks: Buffer[] = [];
      const done = (complete: boolean): void => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete });
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done(true));
      res.on('error', () => done(false));
      res.on('aborted', () => done(false));
    });
    req.on('error', reject);
    req.end();
  });
}
