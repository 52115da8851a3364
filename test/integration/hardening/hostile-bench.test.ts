/**
 * Issue 5, hardening end to end: hostile input against `layover serve` as its own process inside the
 * netns bench (test/bench/), reached the way nodes reach it: its DNS on 127.0.0.1:53 resolves
 * registry.test, its TLS listener on 443 answers for that name, the real distribution registry is
 * the upstream. The probes run from a Node client inside the namespace (./hostile-client.ts), which
 * after every probe fetches a cached blob (hashed against its digest) and asks an A query, so a
 * probe that breaks Layover is named by the control that follows it. At the end a skopeo pull still
 * works from the cache, the process never restarted or logged an error, and `layover cache verify`
 * finds every cached blob intact. hostile-requests.test.ts runs a wider set against the in-process app.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { LAYOVER_CLI } from '../../bench/layover-process.js';
import { runNodeScript } from '../../bench/node-script.js';
import type { HostileJob, HostileProbe, ProbeOutcome } from './hostile-client.js';

const CLIENT = join(import.meta.dirname, 'hostile-client.ts');
const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let bench: Bench;
let blob: { digest: string; size: number; path: string; bytes: Buffer };
let upstreamRequestsBefore = 0;

beforeAll(async () => {
  bench = await startBench({ images: ['oci'] });
  const image = bench.images.oci!;
  // The control pull fills the cache with the image.
  const first = join(bench.sandbox.dir, 'first');
  await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), first);
  const layer = image.manifests[0]!.layers[1]!;
  blob = { ...layer, path: `/v2/${image.repository}/blobs/${layer.digest}`, bytes: readFileSync(join(first, layer.digest.slice(7))) };
  expect(sha256(blob.bytes)).toBe(blob.digest);
  // Misses may lead to upstream requests after their responses (access records): let them pass.
  let seen: number;
  do {
    seen = bench.registry.requests().length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    await bench.registry.sync();
  } while (bench.registry.requests().length !== seen);
}, 120_000);
afterAll(() => bench?.close());

/** Runs the probes inside the sandbox; every control after them must have passed. */
async function probe(probes: HostileProbe[]): Promise<Map<string, ProbeOutcome>> {
  const layover = bench.layover!;
  await bench.registry.sync();
  upstreamRequestsBefore = bench.registry.requests().length;
  const job: HostileJob = {
    caFile: layover.caFile,
    host: INTERCEPTED_HOST,
    control: { path: blob.path, digest: blob.digest },
    dns: { address: '127.0.0.1', port: 53 },
    expectAddress: '127.0.0.1',
    probes,
  };
  const { lines, output } = await runNodeScript<ProbeOutcome>(bench.sandbox, CLIENT, job, { timeoutMs: 60_000 });
  expect(lines.map((l) => l.name), output).toEqual(probes.map((p) => p.name));
  for (const line of lines) expect(line.control, `still serving after "${line.name}": ${line.control.detail}`).toMatchObject({ blob: true, dns: true });
  expect(layover.child.exitCode, 'layover is still the same process').toBeNull();
  return new Map(lines.map((line) => [line.name, line]));
}

/** Nothing reached the upstream registry since the last probe() began. */
async function expectNothingUpstream(): Promise<void> {
  await bench.registry.sync();
  expect(bench.registry.requests().slice(upstreamRequestsBefore)).toEqual([]);
}

interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** The first HTTP/1.1 response in `text` (latin1), with a chunked body decoded. */
function parseHttp(text: string): HttpReply {
  const end = text.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = text.slice(0, end === -1 ? text.length : end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = Buffer.from(end === -1 ? '' : text.slice(end + 4), 'latin1');
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (let at = 0; at < body.length; ) {
      const eol = body.indexOf('\r\n', at);
      const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body };
}

const ociCode = (reply: HttpReply): string | undefined => {
  try {
    return (JSON.parse(reply.body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
};

const request = (name: string, head: string, extra = ''): HostileProbe => ({
  name,
  transport: 'tls',
  port: 443,
  payload: `${head} HTTP/1.1\r\nHost: ${INTERCEPTED_HOST}\r\n${extra}Connection: close\r\n\r\n`,
});

describe('hostile input against layover serve in the bench', () => {
  it('registry routes: dot segments, bad names and bad digests get a 4xx OCI error and never reach the upstream', async () => {
    const d = blob.digest;
    const cases: Array<[string, string]> = [
      ['.. segments', `/v2/bench/../../etc/blobs/${d}`],
      ['.. as the name', `/v2/../blobs/${d}`],
      ['%2e%2e segments', `/v2/bench/%2e%2e/%2E%2E/blobs/${d}`],
      ['%2f in the name', '/v2/bench%2f..%2foci/manifests/v1'],
      ['upper-case name', '/v2/Bench/OCI/manifests/v1'],
      ['doubled separators', '/v2/a__-b/manifests/v1'],
      ['leading separator', '/v2/-a/manifests/v1'],
      ['300-byte name', `/v2/${'a'.repeat(300)}/manifests/v1`],
      ['200-byte tag', `/v2/bench/oci/manifests/${'t'.repeat(200)}`],
      ['non-hex digest', `/v2/bench/oci/blobs/sha256:${'z'.repeat(64)}`],
      ['md5 digest', `/v2/bench/oci/blobs/md5:${'0'.repeat(32)}`],
      ['unknown algorithm', `/v2/bench/oci/blobs/sha999:${'0'.repeat(64)}`],
      ['short sha256', `/v2/bench/oci/blobs/sha256:${'0'.repeat(63)}`],
      ['long sha256', `/v2/bench/oci/blobs/sha256:${'0'.repeat(65)}`],
      ['sha512 of sha256 length', `/v2/bench/oci/blobs/sha512:${'0'.repeat(64)}`],
      ['upper-case hex', `/v2/bench/oci/blobs/${d.toUpperCase().replace('SHA256', 'sha256')}`],
      ['short manifest digest', `/v2/bench/oci/manifests/sha256:${'0'.repeat(10)}`],
    ];
    const outcomes = await probe(cases.map(([name, path]) => request(name, `GET ${path}`)));
    for (const [name] of cases) {
      const reply = parseHttp(outcomes.get(name)!.text);
      expect(reply.status, `${name}: ${outcomes.get(name)!.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
      expect(reply.status, name).toBeLessThan(500);
      expect(ociCode(reply), `${name}: ${reply.body.toString()}`).toMatch(/^(NAME_INVALID|DIGEST_INVALID|MANIFEST_UNKNOWN|NAME_UNKNOWN|NOT_FOUND)$/);
    }
    await expectNothingUpstream();
  });

  it('absurd Range values: 416 or the right bytes, never wrong bytes', async () => {
    const ranges = [
      'bytes=99999999999999999999999999-',
      `bytes=${blob.size}-`,
      'bytes=5-1',
      'bytes=-0',
      'bytes=--1',
      'bytes=0-1e9',
      'bytes=0x10-0x20',
      'items=0-10',
      `bytes=${Array.from({ length: 300 }, (_, i) => `${i}-${i}`).join(',')}`,
      'bytes=0-18446744073709551616',
      'bytes=1-2',
    ];
    const outcomes = await probe(ranges.map((range) => request(range.slice(0, 60), `GET ${blob.path}`, `Range: ${range}\r\n`)));
    for (const range of ranges) {
      const reply = parseHttp(outcomes.get(range.slice(0, 60))!.text);
      expect([200, 206, 416], `${range}: ${reply.status}`).toContain(reply.status);
      if (reply.status === 200) expect(sha256(reply.body)).toBe(blob.digest);
      if (reply.status === 206) {
        const [, start, end] = /^bytes (\d+)-(\d+)\/\d+$/.exec(reply.headers['content-range'] ?? '') ?? [];
        expect(reply.body.equals(blob.bytes.subarray(Number(start), Number(end) + 1)), range).toBe(true);
      }
      if (reply.status === 416) {
        expect(reply.headers['content-range'], range).toBe(`bytes */${blob.size}`);
        expect(JSON.parse(reply.body.toString()), range).toMatchObject({ errors: [{ code: 'RANGE_INVALID' }] });
      }
    }
    expect(parseHttp(outcomes.get('bytes=1-2')!.text).status).toBe(206);
    await expectNothingUpstream();
  });

  it('oversized headers, two Hosts, two lengths and a foreign absolute target: 4xx and a closed connection', async () => {
    const outcomes = await probe([
      request('64 KiB header', 'GET /v2/', `X-Big: ${'a'.repeat(64 * 1024)}\r\n`),
      request('3000 headers', 'GET /v2/', 'X-Many: a\r\n'.repeat(3000)),
      { name: 'two Hosts, foreign first', transport: 'tls', port: 443, payload: `GET ${blob.path} HTTP/1.1\r\nHost: registry-direct.test\r\nHost: ${INTERCEPTED_HOST}\r\n\r\n` },
      { name: 'two Hosts, ours first', transport: 'tls', port: 443, payload: `GET ${blob.path} HTTP/1.1\r\nHost: ${INTERCEPTED_HOST}\r\nHost: registry-direct.test\r\n\r\n` },
      request('two Content-Lengths', 'GET /v2/', 'Content-Length: 1\r\nContent-Length: 2\r\n'),
      request('absolute target for another host', 'GET https://registry-direct.test/v2/bench/oci/manifests/v1'),
      request('scheme-relative target', 'GET //registry-direct.test/v2/'),
    ]);
    const expectStatus = (name: string, status: number, code?: string): void => {
      const outcome = outcomes.get(name)!;
      const reply = parseHttp(outcome.text);
      expect(reply.status, `${name}: ${outcome.text.slice(0, 300)}`).toBe(status);
      expect(outcome.closed, `${name}: connection closed`).toBe(true);
      if (code) expect(ociCode(reply), name).toBe(code);
    };
    expectStatus('64 KiB header', 431);
    expectStatus('3000 headers', 431);
    expectStatus('two Hosts, foreign first', 400, 'UNSUPPORTED');
    expectStatus('two Hosts, ours first', 400, 'UNSUPPORTED');
    expectStatus('two Content-Lengths', 400);
    expectStatus('absolute target for another host', 400, 'UNSUPPORTED');
    expectStatus('scheme-relative target', 400, 'UNSUPPORTED');
    await expectNothingUpstream();
  });

  it('request smuggling shapes get one 400 and nothing reaches the upstream', async () => {
    const start = `GET /v2/bench/oci/manifests/v1 HTTP/1.1\r\nHost: ${INTERCEPTED_HOST}\r\n`;
    const smuggled = `GET /v2/bench/oci/manifests/smuggled HTTP/1.1\r\nHost: ${INTERCEPTED_HOST}\r\n\r\n`;
    const shapes: Array<[string, string]> = [
      ['CL and TE', `${start}Content-Length: ${5 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
      ['TE twice', `${start}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${smuggled}`],
      ['TE xchunked', `${start}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
      ['TE with a space before the colon', `${start}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
      ['TE chunked, identity in one', `${start}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`],
      ['bare LF line ends', `GET /v2/bench/oci/manifests/v1 HTTP/1.1\nHost: ${INTERCEPTED_HOST}\nTransfer-Encoding: chunked\nContent-Length: 3\n\n0\n\n`],
    ];
    const outcomes = await probe(shapes.map(([name, payload]) => ({ name, transport: 'tls', port: 443, payload })));
    for (const [name] of shapes) {
      const { text, closed } = outcomes.get(name)!;
      expect(text, name).toMatch(/^HTTP\/1\.1 400 /);
      expect(text.match(/HTTP\/1\.1 \d{3} /g), `${name}: one response only`).toHaveLength(1);
      expect(closed, `${name}: connection closed`).toBe(true);
    }
    await expectNothingUpstream();
  });

  it('TLS garbage instead of a ClientHello, and odd or 300-byte SNI: closed or the default certificate, nothing minted', async () => {
    const layover = bench.layover!;
    const mints = (): string[] => layover.logs().filter((l) => l.msg === 'minted TLS certificate').map((l) => String(l.host));
    const mintedBefore = mints();
    const hex = (text: string, encoding: BufferEncoding = 'utf8'): string => Buffer.from(text, encoding).toString('hex');
    const garbage: HostileProbe[] = [
      { name: '4 KiB of A', transport: 'tcp', port: 443, payload: 'A'.repeat(4096) },
      { name: 'plain HTTP to the TLS port', transport: 'tcp', port: 443, payload: `GET /v2/ HTTP/1.1\r\nHost: ${INTERCEPTED_HOST}\r\n\r\n` },
      { name: 'a record header promising 64 KiB', transport: 'tcp', port: 443, hex: '160301ffff01' },
      { name: 'an alert first', transport: 'tcp', port: 443, hex: '15030100020228' },
      // SSLv2-format hello (record length 28): one RSA key-exchange cipher, no SNI, no extensions.
      { name: 'SSLv2-format hello', transport: 'tcp', port: 443, hex: `801c01030300030000001000002f${'ab'.repeat(16)}` },
    ];
    const oddNames: Array<[string, string]> = [
      ['300-byte SNI', hex(`${'a'.repeat(287)}.registry.test`)],
      ['SNI with a space', hex('x y.registry.test')],
      ['SNI with NUL', hex('registry.test\u0000.evil')],
      ['SNI wildcard', hex('*.registry.test')],
      ['SNI with a port', hex('registry.test:443')],
      ['SNI IP literal', hex('127.0.0.1')],
      ['empty SNI', ''],
      ['latin1 SNI', hex('\u00fc.registry.test', 'latin1')],
    ];
    const outcomes = await probe([
      ...garbage,
      // A hello that gets a ServerHello then waits for the client's key exchange: 800 ms is enough to see which.
      ...oddNames.map(([name, sni]): HostileProbe => ({ name, transport: 'tcp', port: 443, clientHelloSni: sni, waitMs: 800 })),
      // The control: the same hand-made hello with the intercepted name gets its handshake going.
      { name: 'hand-made hello for registry.test', transport: 'tcp', port: 443, clientHelloSni: hex(INTERCEPTED_HOST), waitMs: 800 },
    ]);
    for (const { name } of garbage) {
      const outcome = outcomes.get(name)!;
      expect(outcome.closed, `${name}: closed`).toBe(true);
      // Nothing, or a TLS alert record: never a handshake or an HTTP answer.
      expect(outcome.text === '' || outcome.text.charCodeAt(0) === 0x15, `${name}: ${Buffer.from(outcome.text, 'latin1').toString('hex').slice(0, 40)}`).toBe(true);
    }
    for (const [name] of oddNames) {
      const { text, closed } = outcomes.get(name)!;
      const first = text.charCodeAt(0);
      if (text === '' || first === 0x15) expect(closed || first === 0x15, name).toBe(true);
      // A handshake, if any, carries the default certificate (docker.proxy), never one for the odd name.
      else expect(first === 0x16 && text.includes('docker.proxy'), `${name}: ${Buffer.from(text, 'latin1').toString('hex').slice(0, 40)}`).toBe(true);
    }
    expect(outcomes.get('300-byte SNI')!.text.includes('docker.proxy')).toBe(false);
    const control = outcomes.get('hand-made hello for registry.test')!.text;
    expect(control.charCodeAt(0), 'a ServerHello').toBe(0x16);
    expect(mints().filter((host) => !mintedBefore.includes(host))).toEqual([]);
    await expectNothingUpstream();
  });

  it('malformed DNS over UDP: dropped or answered with an error to the same ID, never a reflection', async () => {
    // registry.test A, ID 0x1234, and variants of it.
    const query = '12340100000100000000000008726567697374727904746573740000010001';
    const udp = (name: string, hex: string): HostileProbe => ({ name, transport: 'udp', port: 53, host: '127.0.0.1', hex });
    const cases = [
      udp('12 bytes, all counts 0xffff', '12340000ffffffffffffffff'),
      udp('empty datagram', ''),
      udp('700 random-looking bytes', createHash('sha512').update('x').digest('hex').repeat(11).slice(0, 1400)),
      udp('truncated question', query.slice(0, 30)),
      udp('compression pointer to itself', `${query.slice(0, 24)}c00c00010001`),
      udp('label length that lies', `${query.slice(0, 24)}3f7265676973747279`),
      udp('two questions', `${query.slice(0, 8)}0002${query.slice(12)}${query.slice(24)}`),
      udp('a response (QR set)', `12348180${query.slice(8)}`),
      udp('5000 bytes', `${query}${'00'.repeat(5000)}`),
    ];
    const outcomes = await probe(cases);
    for (const { name } of cases) {
      const { text, replies } = outcomes.get(name)!;
      expect(replies, name).toBeLessThanOrEqual(1);
      if (replies === 1) {
        const reply = Buffer.from(text, 'latin1');
        expect(reply.readUInt16BE(0), `${name}: the query's ID`).toBe(0x1234);
        expect(reply[2]! & 0x80, `${name}: a response`).toBe(0x80);
        expect(reply.readUInt16BE(6), `${name}: no answers`).toBe(0);
        expect(reply[3]! & 0x0f, `${name}: an error rcode`).not.toBe(0);
      }
    }
    // Nothing to answer to: answering a response would let two servers bounce packets forever.
    expect(outcomes.get('a response (QR set)')!.replies).toBe(0);
    expect(outcomes.get('empty datagram')!.replies).toBe(0);
  });

  it('malformed DNS over TCP: oversized frames close the connection, garbage gets FORMERR', async () => {
    const tcp = (name: string, payload: { hex?: string; payload?: string }, waitMs = 3000): HostileProbe => ({ name, transport: 'tcp', port: 53, host: '127.0.0.1', waitMs, ...payload });
    const outcomes = await probe([
      tcp('a frame of 65535 bytes announced', { hex: 'ffff12340100' }),
      tcp('HTTP to the DNS port', { payload: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' }),
      tcp('12-byte garbage frame', { hex: '000c12340000ffffffffffffffff' }, 500),
      tcp('a frame that is a response', { hex: '001f12348180000100000000000008726567697374727904746573740000010001' }, 500),
    ]);
    for (const name of ['a frame of 65535 bytes announced', 'HTTP to the DNS port']) {
      const outcome = outcomes.get(name)!;
      expect(outcome.closed, `${name}: closed`).toBe(true);
      expect(outcome.ms, `${name}: closed at once`).toBeLessThan(2000);
      expect(outcome.text, name).toBe('');
    }
    const garbage = Buffer.from(outcomes.get('12-byte garbage frame')!.text, 'latin1');
    if (garbage.length > 0) {
      expect(garbage.readUInt16BE(2), 'the query ID').toBe(0x1234);
      expect(garbage[5]! & 0x0f, 'FORMERR').toBe(1);
    }
    expect(outcomes.get('a frame that is a response')!.text).toBe('');
  });

  it('afterwards: a skopeo pull works from the cache, no error was logged, and the cache verifies intact', async () => {
    const image = bench.images.oci!;
    const layover = bench.layover!;
    bench.registry.clearRequests();
    const again = join(bench.sandbox.dir, 'again');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), again);
    for (const b of image.blobs) expect(sha256(readFileSync(join(again, b.digest.slice(7)))), b.digest).toBe(b.digest);
    await bench.registry.sync();
    expect(bench.registry.requests().filter((r) => r.path.includes('/blobs/'))).toEqual([]);
    expect(layover.child.exitCode).toBeNull();
    const errors = layover.logs().filter((l) => l.level >= 50);
    expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);

    // `cache verify` needs the cache unlocked: stop Layover (SIGTERM, graceful), then re-hash every blob.
    await layover.stop();
    const verify = await bench.sandbox.exec(process.execPath, [LAYOVER_CLI, 'cache', 'verify', '--data-dir', layover.dataDir, '--upstream-dns', '127.0.0.3', '--advertise', '127.0.0.1']);
    expect(verify.code, verify.stderr).toBe(0);
    const result = parse(verify.stdout) as { checked: number; removed: string[] };
    expect(result.removed).toEqual([]);
    expect(result.checked).toBeGreaterThanOrEqual(image.blobs.length);
  }, 60_000);
});
