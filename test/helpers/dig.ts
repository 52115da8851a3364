/** Runs Debian's `dig` against a test server and parses what the tests need. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DigAnswer {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface DigResult {
  status: string;
  flags: string[];
  answers: DigAnswer[];
  ms: number;
  raw: string;
}

export interface DigOptions {
  tcp?: boolean;
  /** Seconds dig waits for a reply (one try). */
  time?: number;
  /** Extra options such as '+noedns'. */
  extra?: string[];
}

export async function dig(port: number, name: string, type: string, options: DigOptions = {}): Promise<DigResult> {
  const args = ['@127.0.0.1', '-p', String(port), name, type, '+tries=1', `+time=${options.time ?? 2}`, '+nocookie'];
  if (options.tcp) args.push('+tcp');
  args.push(...(options.extra ?? []));
  const started = performance.now();
  // dig exits 9 when no server answered; the output still says so.
  const { stdout } = await run('dig', args).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const ms = performance.now() - started;
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NO-ANSWER';
  const flags = (/;; flags: ([a-z ]*);/.exec(stdout)?.[1] ?? '').split(' ').filter(Boolean);
  const answers: DigAnswer[] = [];
  const section = /;; ANSWER SECTION:\n([\s\S]*?)\n\n/.exec(stdout)?.[1] ?? '';
  for (const line of section.split('\n')) {
    const [owner, ttl, , rtype, ...data] = line.trim().split(/\s+/);
    if (owner && ttl && rtype) answers.push({ name: owner, ttl: Number(ttl), type: rtype, data: data.join(' ') });
  }
  return { status, flags, answers, ms, raw: stdout };
}
