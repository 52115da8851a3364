import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bench, DIRECT_HOST, REGISTRY_ADDRESS } from '../../bench/bench.js';

export interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  code: number | null;
  stderr: string;
}

/**
 * curl inside the bench's sandbox (names resolve through Layover's DNS), trusting
 * Layover's CA; returns the status, lower-cased headers and body bytes of the last response.
 * With `direct`, it asks the registry itself instead (registry-direct.test, trusting the test CA).
 */
export async function curl(bench: Bench, url: string, args: string[] = [], options: { direct?: boolean } = {}): Promise<CurlResult> {
  const dir = mkdtempSync(join(bench.sandbox.dir, 'curl-'));
  const [headerFile, bodyFile] = [join(dir, 'headers'), join(dir, 'body')];
  const trust = options.direct ? ['--cacert', bench.ca.certFile, '--resolve', `${DIRECT_HOST}:443:${REGISTRY_ADDRESS}`] : ['--cacert', bench.layover!.caFile];
  const result = await bench.sandbox.exec('curl', ['-sS', ...trust, '-D', headerFile, '-o', bodyFile, ...args, url]);
  const read = (file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch {
      return Buffer.alloc(0);
    }
  };
  const blocks = read(headerFile).toString().split(/\r?\n\r?\n/).filter((b) => b.startsWith('HTTP/'));
  const [statusLine, ...headerLines] = (blocks.at(-1) ?? '').split(/\r?\n/);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine?.split(' ')[1] ?? 0), headers, body: read(bodyFile), code: result.code, stderr: result.stderr };
}
