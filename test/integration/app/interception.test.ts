import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const run = promisify(execFile);
const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

/** The whole of Layover as `layover serve` builds it, with dnsmasq as the real upstream resolver. */
async function start(flags: Record<string, string | boolean> = {}): Promise<RunningLayover> {
  const dnsmasq = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'] } });
  onTestFinished(() => dnsmasq.stop());
  const layover = await startLayover({
    'upstream-dns': `${dnsmasq.host}:${dnsmasq.port}`,
    advertise: '127.0.0.1,::1',
    registries: 'quay.io *.pkg.dev',
    ...flags,
  });
  running.push(layover);
  return layover;
}

describe('interception end to end', () => {
  it('DNS: intercepted names get the advertised addresses, other names the upstream answer', async () => {
    const layover = await start();
    const port = layover.addresses.dns!.port;
    expect((await dig(port, 'quay.io', 'A')).answers.map((a) => a.data)).toEqual(['127.0.0.1']);
    expect((await dig(port, 'europe-docker.pkg.dev', 'AAAA')).answers.map((a) => a.data)).toEqual(['::1']);
    expect((await dig(port, 'registry-1.docker.io', 'A', { tcp: true })).answers.map((a) => a.data)).toEqual(['127.0.0.1']);
    expect((await dig(port, 'docker.proxy', 'A')).answers.map((a) => a.data)).toEqual(['127.0.0.1']);
    expect((await dig(port, 'other.test', 'A')).answers.map((a) => a.data)).toEqual(['192.0.2.7']);
  });

  it('TLS: curl verifies two intercepted names against the CA; an unknown name is not minted', async () => {
    const layover = await start();
    const port = layover.addresses.https.port;
    const caFile = join(layover.dataDir, 'ca', 'ca.crt');
    for (const name of ['quay.io', 'europe-docker.pkg.dev']) {
      // TLS verifies; the request itself goes upstream, which the test resolver does not know: 503. The
      // URL names no port, as a client's does (a port REGISTRIES does not give the registry is refused).
      const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, '--connect-to', `${name}:443:127.0.0.1:${port}`, `https://${name}/v2/library/x/manifests/latest`]);
      expect(stdout).toBe('503');
    }
    const unknown = await run('curl', ['-sS', '--cacert', caFile, '--resolve', `example.com:${port}:127.0.0.1`, `https://example.com:${port}/ca.crt`]).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect((unknown as { code: number }).code).toBe(60); // curl: peer certificate cannot be authenticated
    const minted = layover.logs.filter((l) => l.msg === 'minted TLS certificate').map((l) => l.host);
    expect(minted.sort()).toEqual(['europe-docker.pkg.dev', 'quay.io']);
  });

  it('TLS: the leaf for a name carries exactly that name and is issued by the CA', async () => {
    const layover = await start();
    const cert = await new Promise<X509Certificate>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: layover.addresses.https.port, servername: 'quay.io', ca: layover.app.ca.certPem }, () => {
        resolve(new X509Certificate(socket.getPeerX509Certificate()!.raw));
        socket.end();
      });
      socket.on('error', reject);
    });
    expect(cert.subjectAltName).toBe('DNS:quay.io');
    expect(cert.checkIssued(new X509Certificate(layover.app.ca.certPem))).toBe(true);
  });

  it.each([
    [false, 'http/1.1'],
    [true, 'h2'],
  ])('ALPN with --http2=%s: a client offering h2 and http/1.1 gets %s', async (http2, protocol) => {
    const layover = await start({ http2 });
    const negotiated = await new Promise<string | false | null>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port: layover.addresses.https.port, servername: 'quay.io', ca: layover.app.ca.certPem, ALPNProtocols: ['h2', 'http/1.1'] },
        () => {
          resolve(socket.alpnProtocol);
          socket.end();
        },
      );
      socket.on('error', reject);
    });
    expect(negotiated).toBe(protocol);
  });
});
