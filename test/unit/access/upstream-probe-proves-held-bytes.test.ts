/**
 * An upstream that never gave Layover a digest must show its bytes before its word counts
 * (UpstreamProbe.proveHeld): a random window of the cached blob by Range, or the whole manifest.
 * Real HTTPS servers on loopback play an honest registry (which has the bytes: by Range, ignoring
 * Range, or through a storage redirect) and a lying one (yes to every HEAD, made-up bytes).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { heldSample, SAMPLE_BYTES, showsSample, type HeldSample } from '../../../src/access/held-sample.js';
import { BodyDeadlineError } from '../../../src/upstream/read-limited.js';
import { type HeldBytes, UpstreamProbe } from '../../../src/access/upstream-probe.js';
import type { Digest } from '../../../src/registry/digest.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { UpstreamAuth } from '../../../src/upstream/auth/upstream-auth.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { openCache } from '../cache/cache-fixture.js';
import { type LocalHttps, localHttps } from '../upstream/local-https.js';

const NAME = 'team/app' as RepositoryName;
const BLOB = randomBytes(64 * 1024 + 17);
const digestOf = (bytes: Buffer): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
const BLOB_DIGEST = digestOf(BLOB);
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }));
const MANIFEST_DIGEST = `sha256:${createHash('sha256').update(MANIFEST).digest('hex')}` as Digest;

let net: LocalHttps;
beforeEach(async () => {
  net = await localHttps();
});
afterEach(() => net.close());

/** The blob's bytes as a registry (or its storage) with them answers: by Range unless told to ignore it (a range's end past the blob cut, as RFC 9110 says). */
function sendBlob(req: IncomingMessage, res: ServerResponse, ignoreRange = false, blob = BLOB): void {
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!range || ignoreRange) return void res.writeHead(200, { 'content-length': blob.length }).end(blob);
  const [start, end] = [Number(range[1]), Math.min(Number(range[2]), blob.length - 1)];
  res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': end - start + 1 }).end(blob.subarray(start, end + 1));
}

/** Yes to every HEAD; to a GET, bytes of its own of the length asked, claiming the right size. */
function lie(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'HEAD') return void res.writeHead(200, { 'content-length': BLOB.length }).end();
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!range) return void res.writeHead(200).end(randomBytes(MANIFEST.length));
  const [start, end] = [Number(range[1]), Number(range[2])];
  res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BLOB.length}` }).end(randomBytes(end - start + 1));
}

/** A probe whose samples come from a real cache holding the blob, and whose storage fetches are plain GETs. */
async function probe(blob = BLOB, bodyDeadlineMs?: number): Promise<{ probe: UpstreamProbe; samples: HeldSample[]; storageRanges: string[] }> {
  const { cache } = await openCache();
  const fill = cache.fill(digestOf(blob), Readable.from([blob]), { size: blob.length, mediaType: null, kind: 'blob', source: 'a.test/team/app' });
  await fill.done;
  const samples: HeldSample[] = [];
  const storageRanges: string[] = [];
  const held: HeldBytes = {
    sample: async (digest) => {
      const held = await heldSample(cache, digest);
      if ('sample' in held) samples.push(held.sample);
      return held;
    },
    fetchStorage: async (target, _origin, range) => {
      storageRanges.push(range);
      const res = await request(target, { dispatcher: net.agent, headers: { range } });
      return { statusCode: res.statusCode, headers: res.headers, body: res.body as never };
    },
  };
  const { logger } = captureLogger('debug');
  const auth = new UpstreamAuth({ dispatcher: net.agent, realms: net.realms([]), credentials: [], logger });
  return { probe: new UpstreamProbe(net.agent, auth, held, bodyDeadlineMs), samples, storageRanges };
}

const blob = { kind: 'blob', digest: BLOB_DIGEST } as const;
const anonymous = { kind: 'anonymous' } as const;

describe('UpstreamProbe.proveHeld', () => {
  it('takes a registry that sends the sampled window back by Range, and asks for no more', async () => {
    const port = await net.serve((req, res) => sendBlob(req, res));
    const { probe: p, samples } = await probe();
    expect(await p.proveHeld(`https://registry.example.test:${port}`, NAME, blob, anonymous)).toEqual({ status: 200, shown: true });
    const [sample] = samples;
    expect(sample!.bytes).toHaveLength(SAMPLE_BYTES);
    const gets = net.requests.filter((r) => r.method === 'GET');
    expect(gets).toHaveLength(1);
  });

  it('asks for a whole window of a blob smaller than one, so that the request does not tell its size', async () => {
    const small = randomBytes(1000);
    const ranges: Array<string | undefined> = [];
    const port = await net.serve((req, res) => {
      ranges.push(req.headers.range);
      sendBlob(req, res, false, small);
    });
    const { probe: p, samples } = await probe(small);
    expect(await p.proveHeld(`https://registry.example.test:${port}`, NAME, { kind: 'blob', digest: digestOf(small) }, anonymous)).toEqual({ status: 200, shown: true });
    expect(samples[0]!.bytes.equals(small)).toBe(true);
    expect(ranges).toEqual([`bytes=0-${SAMPLE_BYTES - 1}`]);
  });

  it('takes a registry that ignores Range and sends the whole blob', async () => {
    const port = await net.serve((req, res) => sendBlob(req, res, true));
    const { probe: p } = await probe();
    expect(await p.proveHeld(`https://registry.example.test:${port}`, NAME, blob, anonymous)).toEqual({ status: 200, shown: true });
  });

  it('follows a storage redirect with the same Range', async () => {
    const storage = await net.serve((req, res) => sendBlob(req, res));
    const port = await net.serve((_req, res) => void res.writeHead(307, { location: `https://storage.example.org:${storage}/blob?sig=x` }).end());
    const { probe: p, storageRanges, samples } = await probe();
    expect(await p.proveHeld(`https://registry.example.test:${port}`, NAME, blob, anonymous)).toEqual({ status: 200, shown: true });
    expect(storageRanges).toEqual([`bytes=${samples[0]!.start}-${samples[0]!.start + SAMPLE_BYTES - 1}`]);
  });

  it('refutes a registry that says yes to any HEAD but sends bytes of its own', async () => {
    const port = await net.serve(lie);
    const { probe: p } = await probe();
    const origin = `https://registry.example.test:${port}`;
    expect(await p.head(origin, NAME, blob, anonymous)).toMatchObject({ status: 200 });
    expect(await p.proveHeld(origin, NAME, blob, anonymous)).toEqual({ status: 404, refuted: true });
    // The manifest it sends is not the one with that digest.
    expect(await p.proveHeld(origin, NAME, { kind: 'manifest', digest: MANIFEST_DIGEST }, anonymous)).toEqual({ status: 404, refuted: true });
  });

  it('refutes a window of another blob size; a redirect answered for a manifest shows nothing (404, no refutation to remember)', async () => {
    const wrongSize = await net.serve((req, res) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
      const [start, end] = [Number(range[1]), Number(range[2])];
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BLOB.length + 1}` }).end(BLOB.subarray(start, end + 1));
    });
    const redirecting = await net.serve((_req, res) => void res.writeHead(302, { location: '/elsewhere' }).end());
    const { probe: p } = await probe();
    expect(await p.proveHeld(`https://registry.example.test:${wrongSize}`, NAME, blob, anonymous)).toEqual({ status: 404, refuted: true });
    expect(await p.proveHeld(`https://registry.example.test:${redirecting}`, NAME, { kind: 'manifest', digest: MANIFEST_DIGEST }, anonymous)).toEqual({ status: 404 });
  });

  it('takes a manifest whose bytes match its digest, and passes a refusal on as it came', async () => {
    const honest = await net.serve((_req, res) => void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST));
    const refusing = await net.serve((_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end());
    const { probe: p } = await probe();
    expect(await p.proveHeld(`https://registry.example.test:${honest}`, NAME, { kind: 'manifest', digest: MANIFEST_DIGEST }, anonymous)).toEqual({ status: 200, shown: true });
    expect(await p.proveHeld(`https://registry.example.test:${refusing}`, NAME, blob, anonymous)).toEqual({ status: 401, challenge: 'Basic realm="r"' });
  });

  it('asks a HEAD of a digest with no bytes here to compare (another replica fetches it): its yes shows nothing', async () => {
    const port = await net.serve((req, res) => sendBlob(req, res));
    const { probe: p } = await probe();
    const elsewhere = { kind: 'blob', digest: `sha256:${'b'.repeat(64)}` as Digest } as const;
    expect(await p.proveHeld(`https://registry.example.test:${port}`, NAME, elsewhere, anonymous)).toEqual({ status: 200 });
    expect(net.requests.map((r) => r.method)).toEqual(['HEAD']);
  });

  it('refutes a whole body without the blob\'s length: filler of any length then the guessed window is no proof', async () => {
    // The right bytes even, but chunked: the body's length is not the blob's to check.
    const port = await net.serve((_req, res) => {
      res.writeHead(200);
      res.write(BLOB.subarray(0, 1000));
      res.end(BLOB.subarray(1000));
    });
    const { probe: p } = await probe();
    expect(await p.proveHeld(`https://registry.example.test:${port}`, NAME, blob, anonymous)).toEqual({ status: 404, refuted: true });
  });

  it('gives up on a body dripped a byte at a time once its deadline has passed: the upstream cannot be asked', async () => {
    const drips: NodeJS.Timeout[] = [];
    const port = await net.serve((req, res) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!range) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      else res.writeHead(206, { 'content-range': `bytes ${range[1]}-${range[2]}/${BLOB.length}` });
      // Never silent long enough for a read timeout, never done.
      drips.push(setInterval(() => res.write(' '), 20));
    });
    onTestFinished(() => drips.forEach(clearInterval));
    const { probe: p } = await probe(BLOB, 300);
    const origin = `https://registry.example.test:${port}`;
    for (const object of [blob, { kind: 'manifest', digest: MANIFEST_DIGEST } as const]) {
      const result = await p.proveHeld(origin, NAME, object, anonymous);
      expect(result, object.kind).toMatchObject({ unreachable: expect.any(BodyDeadlineError) });
    }
  });
});

describe('showsSample', () => {
  it('gives up on a whole body (Range ignored) still arriving at its deadline, and destroys it', async () => {
    const body = new PassThrough();
    const drip = setInterval(() => body.write(Buffer.alloc(1)), 10);
    onTestFinished(() => clearInterval(drip));
    const sample: HeldSample = { start: 1 << 20, bytes: randomBytes(SAMPLE_BYTES), size: 2 << 20 };
    const shown = showsSample({ statusCode: 200, headers: { 'content-length': String(sample.size) }, body }, sample, 200);
    await expect(shown).rejects.toBeInstanceOf(BodyDeadlineError);
    expect(body.destroyed).toBe(true);
  });
});

describe('heldSample', () => {
  it('draws again a window whose bytes are all alike (runs of zeros are easy to guess)', async () => {
    const { cache } = await openCache();
    // A quarter of zeros, then random bytes.
    const bytes = Buffer.concat([Buffer.alloc(64 * 1024), randomBytes(192 * 1024)]);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    await cache.fill(digest, Readable.from([bytes]), { size: bytes.length, mediaType: null, kind: 'blob', source: 'a.test/team/app' }).done;
    for (let i = 0; i < 40; i++) {
      const held = await heldSample(cache, digest);
      if (!('sample' in held)) throw new Error('no sample');
      const { start, bytes: window } = held.sample;
      expect(window.equals(bytes.subarray(start, start + SAMPLE_BYTES))).toBe(true);
      expect(window.every((byte) => byte === 0), `window at ${start}`).toBe(false);
    }
    expect(await heldSample(cache, `sha256:${'c'.repeat(64)}` as Digest)).toEqual({ absent: true });
  });
});
