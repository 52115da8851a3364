import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import type { CustomDomain } from '../../../src/config/custom-domains.js';
import { HostnameSet, parseHostname, type Hostname } from '../../../src/registry/hostname.js';
import { loadOrCreateCa, type CertificateAuthority } from '../../../src/tls/ca.js';
import { loadCustomCertificates } from '../../../src/tls/custom-certificates.js';
import { mintServerCertificate } from '../../../src/tls/server-certificate.js';
import { SniContexts } from '../../../src/tls/sni-contexts.js';
import { createTestCa, type TestCa } from '../../bench/test-ca.js';
import { opensslVerify } from './openssl.js';
import { recordingLogger } from './recording-logger.js';

let dir: string;
let ca: CertificateAuthority;
let testCa: TestCa;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'layover-custom-certs-'));
  ({ ca } = await loadOrCreateCa(join(dir, 'layover-ca')));
  testCa = await createTestCa(join(dir, 'test-ca'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const entry = (domain: string, certFile: string | null, keyFile: string | null): CustomDomain => ({ domain, pathPrefix: '', registry: 'registry.test', upstreamPrefix: '', certFile, keyFile });

describe("Layover's own certificate", () => {
  test('covers docker.proxy and the advertised addresses, for mirror clients that connect by address', async () => {
    const pem = mintServerCertificate(ca, parseHostname('docker.proxy') as Hostname, ['127.0.0.1', '10.1.2.3', '::1', 'not-an-address']);
    const cert = new X509Certificate(pem);
    expect(cert.subjectAltName).toBe('DNS:docker.proxy, IP Address:127.0.0.1, IP Address:10.1.2.3, IP Address:0:0:0:0:0:0:0:1');
    expect(cert.checkIP('10.1.2.3')).toBe('10.1.2.3');
    expect(cert.checkHost('docker.proxy')).toBe('docker.proxy');
    expect((await opensslVerify(ca.certPem, pem, ['-verify_ip', '127.0.0.1'])).ok).toBe(true);
  });

  test('is what a client connecting to an address (no SNI) gets', async () => {
    const sni = new SniContexts({ ca, intercepted: new HostnameSet(['quay.io']), addresses: ['127.0.0.1'], logger: recordingLogger().logger });
    const server = createServer(sni.serverOptions(), (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void server.close());
    const { port } = server.address() as { port: number };
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca: ca.certPem }, () => resolve(s));
      s.once('error', reject);
    });
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerX509Certificate()?.checkIP('127.0.0.1')).toBe('127.0.0.1');
    socket.destroy();
  });
});

describe('custom domain certificates of the operator', () => {
  test('are served by SNI instead of a minted one', async () => {
    const own = await testCa.issue('own-domain', ['docker.example.test']);
    const certificates = loadCustomCertificates([entry('docker.example.test', own.certFile, own.keyFile)]);
    const sni = new SniContexts({ ca, intercepted: new HostnameSet(['docker.example.test']), certificates, logger: recordingLogger().logger });
    const server = createServer(sni.serverOptions(), (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void server.close());
    const { port } = server.address() as { port: number };
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, servername: 'Docker.Example.Test', ca: readFileSync(testCa.certFile, 'utf8') }, () => resolve(s));
      s.once('error', reject);
    });
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerX509Certificate()?.issuer).toContain('Layover test CA');
    socket.destroy();
  });

  test('a key of another certificate stops the start, naming the entry', async () => {
    const a = await testCa.issue('pair-a', ['docker.example.test']);
    const b = await testCa.issue('pair-b', ['docker.example.test']);
    expect(() => loadCustomCertificates([entry('other.example.test', null, null), entry('docker.example.test', a.certFile, b.keyFile)])).toThrow(
      /^customDomains entry 2 \(docker\.example\.test\): keyFile .*pair-b\.key is not the key of certFile .*pair-a\.crt$/,
    );
  });

  test('a certificate for another name, or no key at all, stops the start', async () => {
    const other = await testCa.issue('other-name', ['elsewhere.example.test']);
    expect(() => loadCustomCertificates([entry('docker.example.test', other.certFile, other.keyFile)])).toThrow(/entry 1 \(docker\.example\.test\): certFile .* is not valid for docker\.example\.test/);
    expect(() => loadCustomCertificates([entry('docker.example.test', other.certFile, other.certFile)])).toThrow(/entry 1 .*keyFile .* is not a PEM private key/);
    expect(() => loadCustomCertificates([entry('docker.example.test', join(dir, 'missing.crt'), other.keyFile)])).toThrow(/entry 1 .*certFile: cannot read/);
  });

  test('an expired certificate stops the start', async () => {
    const own = await testCa.issue('expiring', ['docker.example.test']);
    const later = new Date(Date.now() + 5 * 24 * 3600 * 1000);
    expect(() => loadCustomCertificates([entry('docker.example.test', own.certFile, own.keyFile)], later)).toThrow(/expired on/);
  });
});
