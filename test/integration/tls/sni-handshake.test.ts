import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity, type ConnectionOptions, connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { loadOrCreateCa, type CertificateAuthority } from '../../../src/tls/ca.js';
import { SniContexts } from '../../../src/tls/sni-contexts.js';
import { recordingLogger } from '../../unit/tls/recording-logger.js';

const execFileAsync = promisify(execFile);
const intercepted = new HostnameSet(['quay.io', 'ghcr.io', '*.pkg.dev']);
let dir: string;
let ca: CertificateAuthority;
let caFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'layover-tls-'));
  ({ ca } = await loadOrCreateCa(join(dir, 'ca')));
  caFile = join(dir, 'ca.pem');
  await writeFile(caFile, ca.certPem);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A real https server with Layover's SNI options on 127.0.0.1, answering with the SNI it saw. */
async function startServer() {
  const log = recordingLogger();
  const sni = new SniContexts({ ca, intercepted, logger: log.logger });
  const server = createServer(sni.serverOptions(), (req, res) => {
    res.end(`hello ${(req.socket as { servername?: string | false }).servername || '-'}`);
  });
  let tlsClientErrors = 0;
  server.on('tlsClientError', () => tlsClientErrors++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as AddressInfo).port, tlsClientErrors: () => tlsClientErrors, ...log };
}

interface Handshake {
  authorized: boolean;
  error?: string;
  cert: PeerCertificate;
}

/** One TLS handshake trusting only our CA; reports the verdict instead of failing on it. */
function handshake(port: number, servername?: string): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, rejectUnauthorized: false, ...(servername ? { servername } : {}) });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      // With rejectUnauthorized off, Node skips the hostname check: do what it would have done.
      const hostError = servername && socket.authorized ? checkName(servername, socket.getPeerCertificate()) : undefined;
      const error = socket.authorizationError?.toString() ?? hostError;
      resolve({ authorized: socket.authorized && !hostError, ...(error ? { error } : {}), cert: socket.getPeerCertificate() });
      socket.end();
    });
  });
}

function checkName(name: string, cert: PeerCertificate): string | undefined {
  return (checkServerIdentity(name, cert) as NodeJS.ErrnoException | undefined)?.code;
}

describe('TLS by SNI on a real server', () => {
  test('two intercepted names each get their certificate (the wildcard one under *.pkg.dev), verified against the CA', async () => {
    const { port, mints } = await startServer();
    for (const [name, san] of [['quay.io', 'DNS:quay.io'], ['europe-docker.pkg.dev', 'DNS:*.pkg.dev']]) {
      const result = await handshake(port, name);
      expect(result.error).toBeUndefined();
      expect(result.authorized).toBe(true);
      expect(result.cert.subjectaltname).toBe(san);
    }
    expect(mints().map((line) => line.host)).toEqual(['quay.io', 'europe-docker.pkg.dev']);
  });

  test('Node verifies the intercepted name itself with rejectUnauthorized on', async () => {
    const { port } = await startServer();
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'QUAY.io', ca: ca.certPem });
    onTestFinished(() => void socket.destroy());
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.getPeerCertificate().subjectaltname).toBe('DNS:quay.io');
  });

  test('curl trusts an intercepted name with nothing but the CA file', async () => {
    const { port } = await startServer();
    const { stdout } = await execFileAsync('curl', [
      '--silent', '--show-error', '--fail', '--noproxy', '*', '--cacert', caFile,
      '--resolve', `ghcr.io:${port}:127.0.0.1`, `https://ghcr.io:${port}/`,
    ]);
    expect(stdout).toBe('hello ghcr.io');
  });

  test('an unknown name gets the docker.proxy certificate, fails verification and mints nothing', async () => {
    const { port, mints } = await startServer();
    const unknown = await handshake(port, 'example.com');
    expect(unknown.cert.subjectaltname).toBe('DNS:docker.proxy');
    expect(unknown.authorized).toBe(false);
    expect(unknown.error).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const noSni = await handshake(port);
    expect(noSni.cert.subjectaltname).toBe('DNS:docker.proxy');
    expect((await handshake(port, 'docker.proxy')).authorized).toBe(true);
    expect(mints()).toHaveLength(0);
  });

  test('20 simultaneous first handshakes for one name mint once', async () => {
    const { port, mints } = await startServer();
    const results = await Promise.all(Array.from({ length: 20 }, () => handshake(port, 'mirror.pkg.dev')));
    expect(results.every((result) => result.authorized)).toBe(true);
    expect(new Set(results.map((result) => result.cert.serialNumber)).size).toBe(1);
    expect(mints()).toHaveLength(1);
  });

  test('garbage instead of a ClientHello leaves the server serving', async () => {
    const { port, tlsClientErrors } = await startServer();
    for (const garbage of [randomBytes(4096), Buffer.from('GET / HTTP/1.1\r\nHost: quay.io\r\n\r\n'), Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01])]) {
      await sendRaw(port, garbage);
    }
    expect(tlsClientErrors()).toBeGreaterThanOrEqual(2);
    expect((await handshake(port, 'quay.io')).authorized).toBe(true);
  });

  test('hand-made ClientHellos with a 300-byte or odd SNI mint nothing and leave the server serving', async () => {
    const { port, mints } = await startServer();
    // The hand-made hello reaches the SNI callback: a valid intercepted name in it is minted.
    await sendRaw(port, clientHello(Buffer.from('crafted.pkg.dev')));
    expect(mints().map((line) => line.host)).toEqual(['crafted.pkg.dev']);

    const odd = [`${'a'.repeat(292)}.pkg.dev`, 'x y.pkg.dev', 'quay.io\u0000.evil', '*.pkg.dev', 'quay.io:443', '127.0.0.1', '', '\u00fc.pkg.dev'];
    for (const name of odd) await sendRaw(port, clientHello(Buffer.from(name, name.startsWith('\u00fc') ? 'latin1' : 'utf8')));
    expect(mints()).toHaveLength(1);
    expect((await handshake(port, 'quay.io')).authorized).toBe(true);
  });

  test('fastify serves with `https: sni.serverOptions()`', async () => {
    const log = recordingLogger();
    const sni = new SniContexts({ ca, intercepted, logger: log.logger });
    const app = Fastify({ https: sni.serverOptions() });
    app.get('/v2/', async () => ({}));
    onTestFinished(() => app.close());
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v2/', servername: 'quay.io', ca: ca.certPem, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.once('error', reject).end();
    });
    expect(status).toBe(200);
    expect(log.mints().map((line) => line.host)).toEqual(['quay.io']);
  });
});

/** Writes bytes to the port and waits until the server answers or hangs up. */
function sendRaw(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(5000, done);
    socket.once('data', done).once('close', done).once('error', done);
    socket.write(bytes);
  });
}

/**
 * A minimal TLS 1.2 ClientHello carrying `serverName` verbatim: Node's client refuses to
 * send names over 255 bytes or with NUL, so malformed SNI must be written by hand.
 */
function clientHello(serverName: Buffer): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const vec16 = (body: Buffer) => Buffer.concat([u16(body.length), body]);
  const extension = (type: number, body: Buffer) => Buffer.concat([u16(type), vec16(body)]);
  const extensions = Buffer.concat([
    extension(0x0000, vec16(Buffer.concat([Buffer.from([0]), vec16(serverName)]))), // server_name: host_name
    extension(0x000a, vec16(Buffer.from([0x00, 0x1d, 0x00, 0x17]))), // supported_groups: x25519, P-256
    extension(0x000b, Buffer.from([1, 0])), // ec_point_formats: uncompressed
    extension(0x000d, vec16(Buffer.from([0x04, 0x03, 0x08, 0x04, 0x04, 0x01]))), // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
  ]);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), // TLS 1.2
    randomBytes(32),
    Buffer.from([0]), // no session id
    vec16(Buffer.from([0xc0, 0x2b, 0xc0, 0x2c, 0xc0, 0x2f, 0xc0, 0x30])), // ECDHE-ECDSA and ECDHE-RSA, AES128/256-GCM
    Buffer.from([1, 0]), // null compression
    vec16(extensions),
  ]);
  const handshakeMessage = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), vec16(handshakeMessage)]);
}

/** The suite a handshake with `options` (trusting our CA, SNI quay.io) ends with. */
function negotiated(port: number, options: ConnectionOptions = {}): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'quay.io', ...options });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      resolve(socket.getCipher().standardName);
      socket.end();
    });
  });
}

describe('the TLS server picks the suite', () => {
  test('AES-128-GCM for a client that puts AES-256-GCM first (OpenSSL\'s order, as curl and Node send it)', async () => {
    const { port } = await startServer();
    expect(await negotiated(port, { ciphers: 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256' })).toBe('TLS_AES_128_GCM_SHA256');
    const { stderr } = await execFileAsync('curl', ['-sv', '-o', '/dev/null', '--cacert', caFile, '--resolve', `quay.io:${port}:127.0.0.1`, `https://quay.io:${port}/`]);
    expect(stderr).toMatch(/SSL connection using TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/);
  });

  test('ChaCha20 for a client that puts it first (one without AES instructions)', async () => {
    const { port } = await startServer();
    expect(await negotiated(port, { ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256' })).toBe('TLS_CHACHA20_POLY1305_SHA256');
  });

  test('a client without AES-128-GCM gets what it offers; TLS 1.2 gets an AES-128-GCM suite too', async () => {
    const { port } = await startServer();
    expect(await negotiated(port, { ciphers: 'TLS_AES_256_GCM_SHA384' })).toBe('TLS_AES_256_GCM_SHA384');
    expect(await negotiated(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256' })).toMatch(/^TLS_ECDHE_(ECDSA|RSA)_WITH_AES_128_GCM_SHA256$/);
  });
});
