/**
 * The bench plus a misbehaving upstream: test/fixtures/faulty-registry.mjs on 127.0.0.4:443 as
 * `faulty.test` (TLS from the bench's test CA, name from the bench's dnsmasq), intercepted by Layover
 * next to registry.test. Helpers for the fault tests: the fixture's blobs (computed here on our own,
 * and checked against what the fixture announces), curl through Layover inside the sandbox, the
 * fixture's request log, and a look at Layover's cache directory (src/cache/cache-layout.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import type { Digest } from '../../../src/registry/digest.js';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { startFixture } from '../../bench/fixture-process.js';
import { type FlagValue, LAYOVER_CLI } from '../../bench/layover-process.js';
import type { ExecResult } from '../../bench/sandbox.js';

export const FAULTY_HOST = 'faulty.test';
export const FAULTY_ADDRESS = '127.0.0.4';
export const BLOB_SIZE = 8 * 1024 * 1024;
const BLOB_COUNT = 11;
const FIXTURE = fileURLToPath(new URL('../../fixtures/faulty-registry.mjs', import.meta.url));

export type Mode = 'ok' | 'truncate' | 'wrong' | 'wrong-last-byte' | 'wrong-last-byte-chunked' | 'stall' | 'mismatch-length';
export const BAD_MODES: readonly Mode[] = ['truncate', 'wrong', 'wrong-last-byte', 'wrong-last-byte-chunked', 'stall', 'mismatch-length'];

export interface FixtureBlob {
  digest: Digest;
  bytes: Buffer;
}

/** Blob `i` of the fixture: the same generator as faulty-registry.mjs, written out again on purpose. */
export function fixtureBlob(i: number): FixtureBlob {
  const key = createHash('sha256').update(`layover-faulty-${i}`).digest();
  const bytes = createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(BLOB_SIZE));
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, bytes };
}

export interface FixtureRequest {
  method: string;
  path: string;
  mode: string | null;
}

export interface FaultyRegistry {
  readonly child: ChildProcess;
  /** Every request logged so far, oldest first (sync() first when asserting that one did NOT happen). */
  requests(): FixtureRequest[];
  /** GETs (or another method) of one digest's blob path, any mode. */
  blobRequests(digest: Digest, method?: string): FixtureRequest[];
  /** Waits until the log has caught up: a marker request straight to the fixture, then its line. */
  sync(): Promise<void>;
}

export interface FaultyBench {
  bench: Bench;
  faulty: FaultyRegistry;
  /** The flags every Layover of this file gets (restart with the same ones). */
  flags: Record<string, FlagValue>;
}

export async function startFaultyBench(flags: Record<string, FlagValue>): Promise<FaultyBench> {
  const layoverFlags = { registries: `${INTERCEPTED_HOST} ${FAULTY_HOST}`, ...flags };
  const bench = await startBench({ images: [], extraRecords: { [FAULTY_HOST]: [FAULTY_ADDRESS] }, layover: { flags: layoverFlags } });
  try {
    return { bench, faulty: await startFaultyFixture(bench), flags: layoverFlags };
  } catch (error) {
    await bench.close();
    throw error;
  }
}

async function startFaultyFixture(bench: Bench): Promise<FaultyRegistry> {
  const { sandbox, ca } = bench;
  const tls = await ca.issue('faulty', [FAULTY_HOST, FAULTY_ADDRESS]);
  const fixture = await startFixture(sandbox, FIXTURE, ['--listen', `${FAULTY_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--blobs', String(BLOB_COUNT), '--size', String(BLOB_SIZE)]);
  // The fixture and this module must agree on the bytes, or every comparison below is meaningless.
  const announced = (fixture.ready.blobs as Array<{ digest: string }>).map((b) => b.digest);
  const expected = Array.from({ length: BLOB_COUNT }, (_, i) => fixtureBlob(i).digest);
  if (JSON.stringify(announced) !== JSON.stringify(expected)) throw new Error(`faulty-registry blobs differ: ${JSON.stringify(announced)}`);

  const requests = (): FixtureRequest[] => fixture.requests() as unknown as FixtureRequest[];
  return {
    child: fixture.child,
    requests,
    blobRequests: (digest, method = 'GET') => requests().filter((r) => r.method === method && r.path.endsWith(`/blobs/${digest}`)),
    sync: () => fixture.sync(`https://${FAULTY_ADDRESS}`, ca.certFile),
  };
}

export interface CurlResult extends ExecResult {
  /** HTTP status, 0 when there was no answer. */
  status: number;
  /** What curl wrote to its output file (possibly partial). */
  body: Buffer;
}

let downloads = 0;

/** curl inside the sandbox, resolving faulty.test through Layover's DNS and trusting Layover's CA. */
export async function curlBlob(bench: Bench, mode: Mode, digest: Digest, options: { head?: boolean; range?: string; http10?: boolean } = {}): Promise<CurlResult> {
  const layover = bench.layover;
  if (!layover) throw new Error('curlBlob: no Layover process');
  const out = join(bench.sandbox.dir, `download-${downloads++}`);
  const args = ['-sS', '--max-time', '60', '--cacert', layover.caFile, '-o', out, '-w', '%{http_code}'];
  const result = await bench.sandbox.exec('curl', [...args, ...(options.head ? ['--head'] : []), ...(options.range ? ['-r', options.range] : []), ...(options.http10 ? ['--http1.0', '--no-alpn'] : []), `https://${FAULTY_HOST}/v2/${mode}/blobs/${digest}`]);
  const body = existsSync(out) ? readFileSync(out) : Buffer.alloc(0);
  rmSync(out, { force: true });
  return { ...result, status: Number(result.stdout.trim()) || 0, body };
}

/** True when curl got a complete, successful answer (exit 0 and a 2xx status). */
export const delivered = (curl: CurlResult): boolean => curl.code === 0 && curl.status >= 200 && curl.status < 300;

export function cacheLayout(dataDir: string): CacheLayout {
  return new CacheLayout(join(dataDir, 'cache'));
}

/** The committed file of `digest`, per the cache's layout. */
export function isCommitted(dataDir: string, digest: Digest): boolean {
  return existsSync(cacheLayout(dataDir).blobPath(digest));
}

/** Names in the cache's temp directory (fills in progress, or left by a crash). */
export function tempFiles(dataDir: string): string[] {
  const dir = cacheLayout(dataDir).tmpDir;
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** `layover cache ls --data-dir D` inside the sandbox (Layover must be stopped: it takes the lock): digest -> size. */
export async function cacheLs(bench: Bench, dataDir: string): Promise<Map<string, number>> {
  const ls = await bench.sandbox.exec(process.execPath, [LAYOVER_CLI, 'cache', 'ls', '--data-dir', dataDir], { timeoutMs: 30_000 });
  if (ls.code !== 0) throw new Error(`layover cache ls failed (${ls.code}): ${ls.stderr}`);
  const entries = new Map<string, number>();
  for (const line of ls.stdout.split('\n').filter(Boolean)) {
    const [digest, size] = line.split('\t');
    entries.set(digest!, Number(size));
  }
  return entries;
}

/** Polls `probe` every 50 ms until it returns true, for at most `timeoutMs`. */
export async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
