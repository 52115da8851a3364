/**
 * Issue 13 (cached manifests): hits are answered off a connection's bytes before Node's HTTP server
 * takes the connection (src/proxy/hit-connections.ts), which it takes for good at the first request
 * that is not a hit, with every byte not yet answered. What a client sees must not change: answers in
 * order, pipelined or not, whoever wrote them; `Connection: close` kept; a head in two pieces, garbage,
 * a client that does not read: Node's, as before; a stop closes idle connections at once. A client
 * that never ends its side of a connection, or pipelines a hundred answers it does not read, holds
 * nothing longer or larger than on Node's server.
 * Real TLS connections to an in-process Layover; the bytes are written by hand.
 */
import { once } from 'node:events';
import { Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { HitPath } from '../../../src/proxy/hit-path.js';
import { digestOf } from '../../../src/registry/digest.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { HOST, manifest, manifestDigest, REPO, seed, small } from './cached-hits-fixture.js';

const MANIFEST_PATH = `/v2/${REPO}/manifests/${manifestDigest}`;
const SMALL_PATH = `/v2/${REPO}/blobs/${small.digest}`;
const request = (method: string, path: string, ...headers: string[]): string => [`${method} ${path} HTTP/1.1`, `Host: ${HOST}`, ...headers, '', ''].join('\r\n');

let layover: RunningLayover;
beforeEach(async () => {
  layover = await startLayover({ registries: HOST });
  await seed(layover);
  // The bytes are read into memory by a first GET, through Node's server: the connection's first request is not a hit.
  await warmUp();
}, 30_000);
afterEach(async () => {
  vi.restoreAllMocks();
  await layover?.close();
});

/** A malformed digest, then GETs of the manifest and the small blob: the first answers of a Layover, from fastify. */
async function warmUp(): Promise<void> {
  const warm = await open();
  warm.write(request('GET', `/v2/${REPO}/manifests/sha256:zz`) + request('GET', MANIFEST_PATH) + request('GET', SMALL_PATH, 'Connection: close'));
  await untilEnd(warm);
}

/** Resolves when the server has ended the connection (its bytes read and dropped). */
function untilEnd(socket: TLSSocket): Promise<unknown> {
  socket.resume();
  return once(socket, 'end');
}

/** A TLS connection; `halfOpen`: a client that never ends its side, even once the server has ended its own. */
async function open(options: { halfOpen?: boolean } = {}): Promise<TLSSocket> {
  const tcp = options.halfOpen ? new Socket({ allowHalfOpen: true }) : undefined;
  tcp?.connect(layover.addresses.https.port, '127.0.0.1');
  const endpoint = tcp ? { socket: tcp } : { host: '127.0.0.1', port: layover.addresses.https.port };
  const socket = connect({ ...endpoint, servername: HOST, ca: layover.app.ca.certPem });
  await once(socket, 'secureConnect');
  socket.on('error', () => undefined);
  return socket;
}

interface Response {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Reads `methods.length` answers off `socket` (their bodies by Content-Length, none for a HEAD). */
async function responses(socket: TLSSocket, methods: string[]): Promise<Response[]> {
  let bytes = Buffer.alloc(0);
  const out: Response[] = [];
  const parse = (): boolean => {
    while (out.length < methods.length) {
      const end = bytes.indexOf('\r\n\r\n');
      if (end === -1) return false;
      const [statusLine, ...lines] = bytes.toString('latin1', 0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      const length = methods[out.length] === 'HEAD' ? 0 : Number(headers['content-length']);
      if (bytes.length < end + 4 + length) return false;
      out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: bytes.subarray(end + 4, end + 4 + length) });
      bytes = bytes.subarray(end + 4 + length);
    }
    return true;
  };
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('data', onData);
      socket.off('end', done);
      socket.pause();
      resolve(out);
    };
    const onData = (chunk: Buffer): void => {
      bytes = Buffer.concat([bytes, chunk]);
      if (parse()) done();
    };
    socket.on('data', onData);
    socket.on('end', done);
  });
}

it('answers pipelined requests in order: hits off the bytes, then Node from the first that is not a hit on', async () => {
  const decided = vi.spyOn(HitPath.prototype, 'hitFor');
  const answeredByNode = vi.spyOn(HitPath.prototype, 'answer');
  const socket = await open();
  const methods = ['GET', 'HEAD', 'GET', 'GET', 'GET'];
  socket.write(request('GET', MANIFEST_PATH) + request('HEAD', MANIFEST_PATH) + request('GET', `/v2/${REPO}/manifests/sha256:zz`) + request('GET', SMALL_PATH) + request('GET', MANIFEST_PATH));
  const [get, head, malformed, afterIt, last] = await responses(socket, methods);
  expect(get).toMatchObject({ status: 200, headers: { 'docker-content-digest': manifestDigest, connection: 'keep-alive' } });
  expect(get!.body.equals(manifest)).toBe(true);
  expect(head).toMatchObject({ status: 200, headers: { 'content-length': String(manifest.length) } });
  expect(head!.body.length).toBe(0);
  expect(malformed!.status).toBe(400);
  expect(JSON.parse(malformed!.body.toString())).toMatchObject({ errors: [expect.objectContaining({ code: expect.any(String) })] });
  expect(afterIt!.body.equals(small.bytes)).toBe(true);
  expect(last!.body.equals(manifest)).toBe(true);
  // Two hits off the bytes; the rest from Node's requests, where the hit path still answers the hits.
  expect(decided.mock.results.slice(0, 3).map((result) => result.value !== undefined)).toEqual([true, true, false]);
  expect(answeredByNode.mock.results.map((result) => result.value)).toEqual([false, true, true]);
  socket.destroy();
});

it('Connection: close: the answer says so, the connection ends, and what followed is not answered', async () => {
  const socket = await open();
  socket.write(request('GET', MANIFEST_PATH, 'Connection: close') + request('GET', MANIFEST_PATH));
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  await once(socket, 'end');
  expect(received.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(1);
  expect(received).toContain('\r\nConnection: close\r\n');
  expect(received.endsWith(manifest.toString('latin1'))).toBe(true);
});

it('a head that comes in two pieces is Node\'s to read, and is still answered as a hit', async () => {
  const answeredByNode = vi.spyOn(HitPath.prototype, 'answer');
  const socket = await open();
  const whole = request('GET', MANIFEST_PATH);
  socket.write(whole.slice(0, 40));
  await new Promise((resolve) => setTimeout(resolve, 50));
  socket.write(whole.slice(40));
  const [answer] = await responses(socket, ['GET']);
  expect(answer!.body.equals(manifest)).toBe(true);
  expect(answeredByNode.mock.results.map((result) => result.value)).toEqual([true]);
  socket.destroy();
});

it('garbage is Node\'s: a 400 in the OCI format on a new connection; after a hit, the connection closed as Node closes it', async () => {
  const GARBAGE = 'GET /v2/\u0001 HTTP/1.1\r\n\r\n';
  const first = await open();
  first.write(GARBAGE);
  const [refused] = await responses(first, ['GET']);
  expect(refused!.status).toBe(400);
  expect(JSON.parse(refused!.body.toString())).toMatchObject({ errors: [expect.objectContaining({ code: 'UNSUPPORTED' })] });

  // Node writes no refusal into a connection that already carries an answer (src/proxy/client-error.ts).
  const afterHit = await open();
  afterHit.write(request('GET', MANIFEST_PATH) + GARBAGE);
  const answers = await responses(afterHit, ['GET', 'GET']);
  expect(answers).toHaveLength(1);
  expect(answers[0]!.body.equals(manifest)).toBe(true);
  expect(afterHit.readableEnded || afterHit.destroyed).toBe(true);
});

it('a client that sends without reading: answers stop being written here once they wait in memory, and Node\'s server takes the connection', async () => {
  const decided = vi.spyOn(HitPath.prototype, 'hitFor');
  const answeredByNode = vi.spyOn(HitPath.prototype, 'answer');
  const socket = await open();
  const count = 60_000; // about 90 MB of answers: far more than loopback's buffers hold
  socket.write(request('GET', SMALL_PATH).repeat(count));
  await vi.waitFor(() => expect(answeredByNode).toHaveBeenCalled(), { timeout: 20_000 });
  // What was answered here is what the socket's buffers took, and a chunk of requests more.
  const answeredHere = decided.mock.calls.length - answeredByNode.mock.calls.length;
  expect(answeredHere).toBeGreaterThan(0);
  expect(answeredHere).toBeLessThan(count / 2);
  socket.destroy();
  // The listener still answers others.
  const other = await open();
  other.write(request('GET', MANIFEST_PATH));
  const [answer] = await responses(other, ['GET']);
  expect(answer!.body.equals(manifest)).toBe(true);
  other.destroy();
}, 60_000);

it('a client that pipelines a hundred GETs of a 900 KB manifest and reads nothing: what its buffers do not take is Node\'s, not a hundred copies in memory', async () => {
  const big = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [], annotations: { pad: 'x'.repeat(900_000) } }));
  const bigPath = `/v2/${REPO}/manifests/${await seedManifest(big)}`;
  const warm = await open();
  warm.write(request('GET', bigPath, 'Connection: close')); // Held in memory from now on.
  await untilEnd(warm);
  const decided = vi.spyOn(HitPath.prototype, 'hitFor');
  const answeredByNode = vi.spyOn(HitPath.prototype, 'answer');
  const socket = await open();
  socket.pause();
  const count = 100;
  const requests = request('GET', bigPath).repeat(count);
  expect(requests.length).toBeLessThan(16 * 1024); // One TLS record: one chunk for the server to read.
  socket.write(requests);
  // Node's server takes the connection once answers wait in memory, and answers one before it waits too.
  await vi.waitFor(() => expect(answeredByNode, 'the connection was never handed to Node').toHaveBeenCalled(), { timeout: 10_000 });
  const answeredHere = decided.mock.calls.length - answeredByNode.mock.calls.length;
  expect(answeredHere).toBeGreaterThan(0);
  // Loopback's socket buffers take a few MB; the rest of the chunk's requests were all answered into memory.
  expect(answeredHere).toBeLessThan(20);
  socket.destroy();
}, 30_000);

it('Connection: close: the connection is gone once the answer is flushed, also for a client that never ends its side', async () => {
  const socket = await open({ halfOpen: true });
  await vi.waitFor(async () => expect(await connectionCount()).toBe(1), { timeout: 5_000 }); // This one only.
  socket.write(request('GET', MANIFEST_PATH, 'Connection: close'));
  const [answer] = await responses(socket, ['GET']);
  expect(answer!.headers.connection).toBe('close');
  await vi.waitFor(async () => expect(await connectionCount()).toBe(0), { timeout: 5_000 });
  expect(socket.writable).toBe(true); // The client's side is still open: the server did not wait for it.
  socket.destroy();
});

it('a stop closes connections answered off their bytes whose clients never end their side', async () => {
  const socket = await open({ halfOpen: true });
  socket.write(request('GET', MANIFEST_PATH));
  await responses(socket, ['GET']);
  socket.resume();
  const started = Date.now();
  // Before, the stop waited for the client's end: past the test's timeout (and a real stop's grace).
  await layover.close();
  expect(Date.now() - started).toBeLessThan(10_000);
  socket.destroy();
});

it('a request without Host is Node\'s to refuse, as HTTP/1.1 requires one', async () => {
  const decided = vi.spyOn(HitPath.prototype, 'hitFor');
  const socket = await open();
  socket.write(`GET /v2/${HOST}/${REPO}/manifests/${manifestDigest} HTTP/1.1\r\n\r\n`);
  const [refused] = await responses(socket, ['GET']);
  expect(refused!.status).toBe(400);
  expect(decided).not.toHaveBeenCalled();
  socket.destroy();
});

it('a stop ends idle connections whose hits were answered off their bytes at once, not after the keep-alive timeout', async () => {
  const socket = await open();
  socket.write(request('GET', MANIFEST_PATH));
  const [answer] = await responses(socket, ['GET']);
  expect(answer!.headers['keep-alive']).toBe('timeout=300');
  socket.resume();
  const ended = once(socket, 'close');
  const started = Date.now();
  await layover.close();
  await ended;
  expect(Date.now() - started).toBeLessThan(10_000);
});

it('an idle connection is closed after KEEPALIVE_TIMEOUT, as Node\'s server closes its own', async () => {
  await layover.close();
  layover = await startLayover({ registries: HOST }, { KEEPALIVE_TIMEOUT: '1s' });
  await seed(layover);
  await warmUp();
  const idle = await open();
  idle.write(request('GET', MANIFEST_PATH));
  const [answer] = await responses(idle, ['GET']);
  expect(answer!.headers['keep-alive']).toBe('timeout=1');
  const started = Date.now();
  idle.resume();
  await once(idle, 'close');
  expect(Date.now() - started).toBeGreaterThan(500);
  expect(Date.now() - started).toBeLessThan(5_000);
});

/** Caches `bytes` as a manifest of REPO anyone may read, as seed() does; its digest. */
async function seedManifest(bytes: Buffer): Promise<string> {
  const digest = digestOf(bytes);
  await layover.app.cache.put(digest, bytes, { size: bytes.length, mediaType: 'application/vnd.oci.image.manifest.v1+json', kind: 'manifest', source: `${HOST}/${REPO}` });
  await new AccessRecords(layover.app.cache).addMember(digest, repositoryKey(`https://${HOST}`, REPO));
  return digest;
}

/** Connections the HTTPS listener holds. */
function connectionCount(): Promise<number> {
  return new Promise((resolve, reject) => layover.app.https.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}
