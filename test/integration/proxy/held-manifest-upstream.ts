/**
 * Fixture upstream for the manifest-route tests: a tiny anonymous registry on 127.0.0.8 serving one
 * OCI manifest (by tag `v1` and by digest, under any repository), whose HEADs the test can hold and
 * release. No real program can be paused on demand between Layover's access check and its answer, so
 * this is a fixture; Layover, its resolver (dnsmasq), TLS and the clients are real.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../../../src/registry/digest.js';
import { createTestCa } from '../../bench/test-ca.js';
import { HeldAnswers } from '../../helpers/held-answers.js';
import { listenWithLoopbackTwin, releaseLoopbackTwin } from '../../helpers/loopback-twin-port.js';

export const MANIFEST_HOST = 'manifests.test';
export const MANIFEST_ADDRESS = '127.0.0.8';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export interface HeldManifestUpstream {
  port: number;
  caFile: string;
  manifest: { digest: Digest; bytes: Buffer };
  seen: Array<{ method: string; url: string }>;
  /** HEADs wait while `heads.holding` (heads.start() ... heads.release()). */
  heads: HeldAnswers;
  close(): Promise<void>;
}

export async function startHeldManifestUpstream(): Promise<HeldManifestUpstream> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-manifests-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('manifests', [MANIFEST_HOST]);
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 };
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [] }));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  const seen: Array<{ method: string; url: string }> = [];
  const heads = new HeldAnswers();

  const server = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    const url = req.url ?? '';
    seen.push({ method: req.method ?? '', url });
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    if (url === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (!/^\/v2\/[a-z0-9/]+\/manifests\/[^/]+$/.test(url) || !(url.endsWith('/manifests/v1') || url.endsWith(`/manifests/${digest}`))) {
      return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
    }
    const answer = (): void => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(bytes.length), 'docker-content-digest': digest });
      res.end(req.method === 'HEAD' ? undefined : bytes);
    };
    if (req.method === 'HEAD' && heads.holding) return heads.hold(answer);
    answer();
  });
  const port = await listenWithLoopbackTwin(server, MANIFEST_ADDRESS);
  return {
    port,
    caFile: ca.certFile,
    manifest: { digest, bytes },
    seen,
    heads,
    close: () =>
      new Promise<void>((resolve) => {
        heads.release();
        void releaseLoopbackTwin(port);
        server.close(() => resolve());
        server.closeAllConnections();
        rmSync(dir, { recursive: true, force: true });
      }),
  };
}
