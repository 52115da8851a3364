/**
 * Fixture upstream for the hardening tests: a tiny registry on 127.0.0.2 that serves one blob and one
 * manifest correctly, and on demand a manifest whose Docker-Content-Digest lies, one whose body does not
 * match the digest it was asked for, and one larger than 4 MiB. No real program misbehaves like that on
 * demand (the distribution registry verifies what it stores), so this is a fixture; Layover, its DNS
 * resolver (dnsmasq), TLS and the clients are real. It records every request, headers included, so a
 * test can tell that a hostile request never left Layover.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, type TestCa } from '../../bench/test-ca.js';
import { listenWithLoopbackTwin, releaseLoopbackTwin } from '../../helpers/loopback-twin-port.js';

export const UPSTREAM_HOST = 'hostile.test';
export const UPSTREAM_ADDRESS = '127.0.0.2';
export const USER = 'hostile-user';
export const PASSWORD = 'pw-Upstr3am-s3cret';
export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface HostileUpstream {
  server: Server;
  port: number;
  ca: TestCa;
  blob: { digest: string; bytes: Buffer };
  manifest: { digest: string; bytes: Buffer };
  /** A digest the fixture answers with other bytes (so the body does not match what was asked for). */
  mismatchedDigest: string;
  /**
   * 4 MiB under the repository `slow`: half at once, the rest 1.5 s later (a response in flight); under
   * `stall`: half, then silence until the socket closes.
   */
  slow: { digest: string; bytes: Buffer };
  /** A second blob, for a miss after an outage. */
  blob2: { digest: string; bytes: Buffer };
  seen: SeenRequest[];
  /** Closes the listener and every connection (the upstream "dies"); start() brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startHostileUpstream(): Promise<HostileUpstream> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-hostile-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('hostile', [UPSTREAM_HOST]);
  const blobBytes = randomBytes(256 * 1024);
  const blob = { digest: sha256(blobBytes), bytes: blobBytes };
  const blob2Bytes = randomBytes(64 * 1024);
  const blob2 = { digest: sha256(blob2Bytes), bytes: blob2Bytes };
  const slowBytes = randomBytes(4 * 1024 * 1024);
  const slow = { digest: sha256(slowBytes), bytes: slowBytes };
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blob.digest, size: blobBytes.length },
      layers: [],
    }),
  );
  const manifest = { digest: sha256(manifestBytes), bytes: manifestBytes };
  const mismatchedDigest = sha256(Buffer.from('not what the fixture sends'));
  const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, annotations: { pad: 'x'.repeat(5 * 1024 * 1024) } }));
  const seen: SeenRequest[] = [];

  const server = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const url = req.url ?? '';
    const sendManifest = (body: Buffer, digest: string): void => {
      res.writeHead(200, { 'content-type': MANIFEST_TYPE, 'content-length': body.length, 'docker-content-digest': digest });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    // Like a private registry: every request needs the account Layover is configured with.
    if (req.headers.authorization !== `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="hostile"' });
      return res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}');
    }
    if (url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      return res.end('{}');
    }
    if (url.endsWith(`/blobs/${blob.digest}`)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blobBytes.length, 'docker-content-digest': blob.digest });
      return res.end(req.method === 'HEAD' ? undefined : blobBytes);
    }
    if (url === `/v2/slow/blobs/${slow.digest}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': slowBytes.length, 'docker-content-digest': slow.digest });
      if (req.method === 'HEAD') return res.end();
      res.write(slowBytes.subarray(0, slowBytes.length / 2));
      const later = setTimeout(() => res.end(slowBytes.subarray(slowBytes.length / 2)), 1500);
      res.on('close', () => clearTimeout(later));
      return;
    }
    if (url === `/v2/stall/blobs/${slow.digest}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': slowBytes.length, 'docker-content-digest': slow.digest });
      return void res.write(slowBytes.subarray(0, slowBytes.length / 2));
    }
    if (url.endsWith(`/blobs/${blob2.digest}`)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob2Bytes.length, 'docker-content-digest': blob2.digest });
      return res.end(req.method === 'HEAD' ? undefined : blob2Bytes);
    }
    if (url.endsWith('/manifests/good') || url.endsWith(`/manifests/${manifest.digest}`)) return sendManifest(manifestBytes, manifest.digest);
    // The header names another digest than the body's.
    if (url.endsWith('/manifests/lying-header')) return sendManifest(manifestBytes, mismatchedDigest);
    // Asked by digest, answers with bytes of another digest (and a header that claims the asked one).
    if (url.endsWith(`/manifests/${mismatchedDigest}`)) return sendManifest(manifestBytes, mismatchedDigest);
    if (url.endsWith('/manifests/huge')) return sendManifest(huge, sha256(huge));
    // Rate limited, with a Retry-After that says something (`limited`) or nothing usable (`limited-badly`).
    const limited = /^\/v2\/library\/(limited|limited-badly)\/blobs\//.exec(url);
    if (limited) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': limited[1] === 'limited' ? '120' : 'when we feel like it' });
      return res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
    }
    // A blob asked for by digest, answered with the bytes of another.
    if (url.endsWith(`/blobs/${mismatchedDigest}`)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob2Bytes.length, 'docker-content-digest': mismatchedDigest });
      return res.end(req.method === 'HEAD' ? undefined : blob2Bytes);
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"unknown","detail":null}]}');
  });
  const port = await listenWithLoopbackTwin(server, UPSTREAM_ADDRESS);
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      void releaseLoopbackTwin(port);
      if (!server.listening) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return {
    server,
    port,
    blob2,
    slow,
    stop,
    start: () => new Promise<void>((resolve) => server.listen(port, UPSTREAM_ADDRESS, resolve)),
    ca,
    blob,
    manifest,
    mismatchedDigest,
    seen,
    close: stop,
  };
}
