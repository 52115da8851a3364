/**
 * Regression test: with a wildcard in REGISTRIES every new name under it was minted a leaf and a
 * TLS context of its own (about 180 KB each: 1,000 names cost 180 MiB). Now the names one label
 * under a parent share that parent's wildcard certificate (`*.pkg.dev`; `*.b.pkg.dev` for
 * `a.b.pkg.dev`), minted once, and clients verify it as they verified the per-name leaves: Node
 * and curl (OpenSSL) with nothing but Layover's CA. The whole app on loopback.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const run = promisify(execFile);
let layover: RunningLayover;

beforeAll(async () => {
  layover = await startLayover({ registries: 'quay.io *.pkg.dev *.internal' });
});
afterAll(async () => {
  await layover?.close();
});

const mints = () => layover.logs.filter((line) => line.msg === 'minted TLS certificate');

/** A TLS handshake that Node verifies in full (chain and name) against Layover's CA alone. */
async function verifiedCertificate(servername: string): Promise<PeerCertificate> {
  const socket = connect({ host: '127.0.0.1', port: layover.addresses.https.port, servername, ca: layover.app.ca.certPem });
  try {
    await once(socket, 'secureConnect');
    return socket.getPeerCertificate();
  } finally {
    socket.destroy();
  }
}

describe('names under a wildcard in REGISTRIES', () => {
  it('50 names one label under the wildcard get one certificate, minted once, verified for each name', async () => {
    const before = mints().length;
    const names = Array.from({ length: 50 }, (_, i) => `region-${i}.pkg.dev`);
    const certificates = await Promise.all(names.map((name) => verifiedCertificate(name)));
    expect(new Set(certificates.map((cert) => cert.fingerprint256)).size).toBe(1);
    expect(certificates[0]!.subjectaltname).toBe('DNS:*.pkg.dev');
    expect(mints().slice(before)).toHaveLength(1);
    expect(mints().at(-1)).toMatchObject({ certificate: '*.pkg.dev' });
  });

  it('deeper names share the wildcard of their own parent, never one that covers a name not intercepted', async () => {
    const [a, c, top] = await Promise.all([verifiedCertificate('a.b.pkg.dev'), verifiedCertificate('c.b.pkg.dev'), verifiedCertificate('top.pkg.dev')]);
    expect(a.subjectaltname).toBe('DNS:*.b.pkg.dev');
    expect(c.fingerprint256).toBe(a.fingerprint256);
    expect(top.subjectaltname).toBe('DNS:*.pkg.dev');
  });

  it('a parent of one label (*.internal) would be refused by verifiers: such a name gets its own certificate', async () => {
    expect((await verifiedCertificate('registry.internal')).subjectaltname).toBe('DNS:registry.internal');
  });

  it('exact names keep their own certificate', async () => {
    expect((await verifiedCertificate('quay.io')).subjectaltname).toBe('DNS:quay.io');
  });

  it('curl (OpenSSL) accepts the wildcard certificate with nothing but the CA file', async () => {
    const port = layover.addresses.https.port;
    const caFile = join(layover.dataDir, 'ca', 'ca.crt');
    for (const name of ['europe-docker.pkg.dev', 'a.b.pkg.dev']) {
      // curl exits non-zero on a certificate it refuses; the request itself goes upstream, which nothing answers here.
      const args = ['-sS', '-o', '/dev/null', '-w', '%{ssl_verify_result}', '--noproxy', '*', '--cacert', caFile, '--resolve', `${name}:${port}:127.0.0.1`];
      const { stdout } = await run('curl', [...args, `https://${name}:${port}/v2/`]);
      expect(stdout).toBe('0');
    }
  });
});
