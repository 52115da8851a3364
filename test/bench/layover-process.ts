/**
 * The real `layover serve` (dist/cli/main.js, built by test/helpers/global-setup.ts) as a process
 * inside a sandbox: DNS on 127.0.0.1:53, HTTPS on :443, HTTP on :80, advertising 127.0.0.1, resolving
 * upstreams through the sandbox's dnsmasq (127.0.0.3) and trusting the test CA. A process, not
 * buildApp(), so tests can kill -9 it and start another on the same data dir.
 *
 * The environment is clean (no LAYOVER_*, REGISTRIES or proxy variables from the host). Set
 * LAYOVER_BENCH_CLI to run another build of the CLI.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESOLVER_ADDRESS } from './resolver.js';
import { type Sandbox, stopChild } from './sandbox.js';

export const LAYOVER_CLI = process.env.LAYOVER_BENCH_CLI ?? fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A flag's value; `true` gives `--flag`, `false` gives `--no-flag`, `undefined` drops a default. */
export type FlagValue = string | boolean | undefined;

export interface LayoverProcessOptions {
  /** Merged over the defaults by name (kebab-case, without `--`). */
  flags?: Record<string, FlagValue>;
  env?: Record<string, string>;
  /** Reuse a data dir (and so its CA and cache); default a new one in the sandbox. */
  dataDir?: string;
  /** The CA file passed as --upstream-ca (the test CA); required unless flags set it. */
  upstreamCa?: string;
  /** How long to wait for "layover is listening"; default 20 s. */
  readyTimeoutMs?: number;
  /** Options for Node itself, before the CLI (e.g. `--trace-gc`, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /**
   * `parsed` (default): every line is parsed and kept for logs() and waitForLog. `drained`: the
   * request lines (`"msg":"request"`) are read and dropped unparsed, as `cat > /dev/null` drains
   * the access log of the bench's logging nginx: parsing and keeping tens of thousands a second took
   * an eighth of a core of the two the servers and their clients share (bench/README.md).
   */
  requestLines?: 'parsed' | 'drained';
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface LayoverProcess {
  readonly child: ChildProcess;
  readonly dataDir: string;
  /** Layover's CA certificate, `<data-dir>/ca/ca.crt` (or `<ca-dir>/ca.crt`). */
  readonly caFile: string;
  /** A directory holding only a copy of that CA as ca.crt: skopeo's --src-cert-dir. */
  readonly certDir: string;
  /** Every JSON log line so far (stdout), parsed. */
  logs(): LogLine[];
  /** stderr so far, plus any stdout line that was not JSON. */
  output(): string;
  /** Resolves with the first log line matching `match`, waiting up to `timeoutMs` (default 10 s). */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` (e.g. SIGKILL) and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** SIGTERM (graceful shutdown), SIGKILL after 3 s; waits for the exit. */
  stop(): Promise<void>;
}

let instances = 0;

/** How a request line ends (src/log/request-line.ts writes `msg` last). */
const REQUEST_LINE_END = '"msg":"request"}';

export async function startLayoverProcess(sandbox: Sandbox, options: LayoverProcessOptions = {}): Promise<LayoverProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(sandbox.dir, 'layover-data-'));
  const flags: Record<string, FlagValue> = {
    'data-dir': dataDir,
    dns: '127.0.0.1:53',
    https: '127.0.0.1:443',
    http: '127.0.0.1:80',
    advertise: '127.0.0.1',
    'upstream-dns': RESOLVER_ADDRESS,
    'upstream-ca': options.upstreamCa,
    registries: 'registry.test',
    'log-level': 'debug',
    // No load balancer to notice a stop here: stop() would otherwise wait out the drain.
    'shutdown-drain': '0s',
    ...options.flags,
  };
  const args: string[] = [];
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    if (value === true) args.push(`--${name}`);
    else if (value === false) args.push(`--no-${name}`);
    else args.push(`--${name}`, value);
  }
  const child = sandbox.spawn(process.execPath, [...(options.nodeArgs ?? []), LAYOVER_CLI, 'serve', ...args], { env: options.env ?? {} });
  const lines: LogLine[] = [];
  const drainRequestLines = options.requestLines === 'drained';
  const waiters = new Set<(line: LogLine) => void>();
  let output = '';
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = (partial + chunk.toString('utf8')).split('\n');
    partial = text.pop() ?? '';
    for (const raw of text) {
      if (!raw || (drainRequestLines && raw.endsWith(REQUEST_LINE_END))) continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        output += `${raw}\n`;
        continue;
      }
      lines.push(line);
      for (const waiter of waiters) waiter(line);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = once(child, 'exit');

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const found = lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const done = (error: Error | null, line?: LogLine): void => {
        clearTimeout(timer);
        waiters.delete(onLine);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolve(line!);
      };
      const onLine = (line: LogLine): void => void (match(line) && done(null, line));
      const onExit = (code: number | null, signal: string | null): void =>
        done(new Error(`layover exited (${code ?? signal}) in ${sandbox.name}:\n${output}\n${JSON.stringify(lines.slice(-20))}`));
      const timer = setTimeout(() => done(new Error(`layover: no matching log line within ${timeoutMs} ms in ${sandbox.name}:\n${output}`)), timeoutMs);
      waiters.add(onLine);
      child.once('exit', onExit);
    });
  };

  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  sandbox.onDestroy(() => stopChild(child));
  try {
    await waitForLog((line) => line.msg === 'layover is listening', options.readyTimeoutMs ?? 20_000);
  } catch (error) {
    await kill('SIGKILL');
    throw error;
  }

  const caDir = typeof flags['ca-dir'] === 'string' ? flags['ca-dir'] : join(dataDir, 'ca');
  const caFile = join(caDir, 'ca.crt');
  const certDir = join(sandbox.dir, `layover-trust-${instances++}`);
  mkdirSync(certDir);
  copyFileSync(caFile, join(certDir, 'ca.crt'));
  return {
    child,
    dataDir,
    caFile,
    certDir,
    logs: () => [...lines],
    output: () => output,
    waitForLog,
    kill,
    stop: () => stopChild(child),
  };
}
