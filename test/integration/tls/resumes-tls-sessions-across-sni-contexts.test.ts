/**
 * Issue 13: TLS session resumption is on, for every certificate Layover serves. Each certificate
 * minted for an SNI name is a SecureContext of its own, with ticket keys of its own; a ticket must
 * still be taken back on the next connection that names the same host, in TLS 1.3 and TLS 1.2, on
 * the HTTPS listener (HTTP/1.1 and HTTP/2 servers) and behind a CONNECT of the HTTPS_PROXY listener.
 * A client that resumes skips the certificate and the server's signature: a full handshake costs
 * Layover about three times the CPU of a resumed one (bench/tls-handshake.bench-run.ts).
 * Real handshakes with Node's TLS client on loopback; the session is the one the first connection got.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

type Version = 'TLSv1.2' | 'TLSv1.3';

interface Connection {
  reused: boolean;
  authorized: boolean;
  subjectAltName: string | undefined;
  session: Buffer | undefined;
}

/** A TLS 1.3 ticket arrives after the handshake: wait this long for it before giving up. */
const TICKET_WAIT_MS = 5_000;

async function start(flags: Record<string, string | boolean> = {}): Promise<RunningLayover> {
  const layover = await startLayover({ registries: 'quay.io *.pkg.dev', ...flags });
  onTestFinished(() => layover.close());
  return layover;
}

/** One connection over `socket` (or to 127.0.0.1:port): its verdict, and the session it was given. */
function handshake(layover: RunningLayover, target: { port: number } | { socket: Socket }, servername: string | null, version: Version, session?: Buffer): Promise<Connection> {
  const options: ConnectionOptions = {
    ...('port' in target ? { host: '127.0.0.1', port: target.port } : { socket: target.socket }),
    ca: layover.app.ca.certPem,
    minVersion: version,
    maxVersion: version,
    ALPNProtocols: ['http/1.1'],
    // Without SNI the default certificate names docker.proxy and the advertised 127.0.0.1.
    ...(servername === null ? { checkServerIdentity: () => undefined } : { servername }),
    ...(session ? { session } : {}),
  };
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(options);
    onTestFinished(() => void socket.destroy());
    let result: Omit<Connection, 'session'> | undefined;
    let ticket: Buffer | undefined;
    const timer = setTimeout(() => done(), TICKET_WAIT_MS);
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      if (result) resolve({ ...result, session: ticket });
      else reject(new Error('no handshake'));
    };
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('session', (got: Buffer) => {
      ticket = got;
      if (result) done();
    });
    socket.once('secureConnect', () => {
      result = { reused: socket.isSessionReused(), authorized: socket.authorized, subjectAltName: socket.getPeerX509Certificate()?.subjectAltName };
      // TLS 1.2 hands over its ticket during the handshake, TLS 1.3 after it; a resumed one needs none.
      if (ticket || session) done();
    });
  });
}

/** A tunnel through the HTTPS_PROXY listener to `host`:443, ready for the TLS client. */
async function connectThroughProxy(port: number, host: string): Promise<Socket> {
  const socket = netConnect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  await once(socket, 'connect');
  socket.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`);
  const [head] = (await once(socket, 'data')) as [Buffer];
  expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
  return socket;
}

const certificates: [string, string | null, string][] = [
  ['a name with its own certificate', 'quay.io', 'DNS:quay.io'],
  ['a name under a wildcard', 'europe-docker.pkg.dev', 'DNS:*.pkg.dev'],
  ['the default certificate by SNI', 'docker.proxy', 'DNS:docker.proxy, IP Address:127.0.0.1'],
  ['the default certificate without SNI', null, 'DNS:docker.proxy, IP Address:127.0.0.1'],
];

describe.each([
  ['HTTP/1.1 server', {}],
  ['HTTP/2 server', { http2: true }],
])('the HTTPS listener (%s) resumes sessions', (_server, flags) => {
  it.each(['TLSv1.3', 'TLSv1.2'] as const)('%s: for minted, wildcard and default certificates', async (version) => {
    const layover = await start(flags);
    const target = { port: layover.addresses.https.port };
    for (const [what, name, san] of certificates) {
      const first = await handshake(layover, target, name, version);
      expect(first, what).toMatchObject({ reused: false, authorized: true, subjectAltName: san });
      expect(first.session, `${what}: a session to resume`).toBeInstanceOf(Buffer);
      for (let again = 0; again < 3; again++) {
        const next = await handshake(layover, target, name, version, first.session);
        // A resumed handshake sends no certificate: the session vouches for the one verified first.
        expect(next, `${what}, reconnection ${again + 1}`).toMatchObject({ reused: true, authorized: true });
      }
    }
  });
});

describe('the HTTPS_PROXY listener resumes sessions behind CONNECT', () => {
  it.each(['TLSv1.3', 'TLSv1.2'] as const)('%s: for a minted certificate and the default one', async (version) => {
    const layover = await start();
    const port = layover.addresses.proxy!.port;
    for (const [name, san] of [['quay.io', 'DNS:quay.io'], ['docker.proxy', 'DNS:docker.proxy, IP Address:127.0.0.1']] as const) {
      const first = await handshake(layover, { socket: await connectThroughProxy(port, name) }, name, version);
      expect(first).toMatchObject({ reused: false, authorized: true, subjectAltName: san });
      const next = await handshake(layover, { socket: await connectThroughProxy(port, name) }, name, version, first.session);
      expect(next).toMatchObject({ reused: true, authorized: true });
    }
  });
});
