/**
 * The held-upstream bench (./held-upstream.ts) with real curl over HTTP/1.0 (no ALPN: Layover refuses a
 * client that offers http/1.0 only), for the tests of bodies of no known length.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { HELD_HOST, type HeldBench, startHeldBench } from './held-upstream.js';

const run = promisify(execFile);

export interface Http10Answer {
  status: number;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface Http10Bench {
  bench: HeldBench;
  /** curl over HTTP/1.0 to Layover on 127.0.0.1 as `held.test` or docker.proxy. */
  http10(url: string, args?: string[]): Promise<Http10Answer>;
  close(): Promise<void>;
}

export async function startHttp10Bench(flags: Record<string, string> = {}): Promise<Http10Bench> {
  const bench = await startHeldBench(flags);
  const dir = mkdtempSync(join(tmpdir(), 'layover-http10-'));
  writeFileSync(join(dir, 'ca.crt'), bench.layover.app.ca.certPem);
  const http10 = async (url: string, args: string[] = []): Promise<Http10Answer> => {
    const port = String(bench.upstream.port);
    const resolve = [HELD_HOST, 'docker.proxy'].flatMap((name) => ['--resolve', `${name}:${port}:127.0.0.1`]);
    await run('curl', ['-sS', '--max-time', '30', '--http1.0', '--no-alpn', '--cacert', join(dir, 'ca.crt'), ...resolve, '-D', join(dir, 'headers'), '-o', join(dir, 'body'), ...args, url]);
    const [statusLine, ...lines] = readFileSync(join(dir, 'headers'), 'utf8').trim().split(/\r?\n/);
    const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
    return { status: Number(statusLine!.split(' ')[1]), headers, body: readFileSync(join(dir, 'body')) };
  };
  return {
    bench,
    http10,
    close: async () => {
      await bench.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bench of a test file (Layover started with `flags`): started before its tests, closed after them. */
export function http10BenchForFile(flags: Record<string, string> = {}): Pick<Http10Bench, 'bench' | 'http10'> {
  let current: Http10Bench | undefined;
  beforeAll(async () => {
    current = await startHttp10Bench(flags);
  }, 60_000);
  afterAll(() => current?.close());
  return {
    get bench() {
      return current!.bench;
    },
    http10: (url, args) => current!.http10(url, args),
  };
}
