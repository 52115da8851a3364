/**
 * A fixture server (test/fixtures/*.mjs) running inside a bench sandbox that logs one JSON line
 * per request on stdout: its lines, a wait for a matching one, and `sync()`, which sends a marker
 * request straight to the fixture and waits for its line, so that a test asserting that something
 * did NOT reach the fixture has seen every line written before.
 */
import type { ChildProcess } from 'node:child_process';
import type { Sandbox } from './sandbox.js';

export type FixtureLine = Record<string, unknown>;

export interface FixtureProcess {
  readonly child: ChildProcess;
  /** Every request line so far (sync markers left out), oldest first. */
  requests(): FixtureLine[];
  /** The first line (`{"listening", …}`). */
  readonly ready: FixtureLine;
  waitFor(match: (line: FixtureLine) => boolean, timeoutMs?: number): Promise<FixtureLine>;
  /** GETs `${base}/layover-sync-<n>` with curl (trusting `caFile`) and waits for the fixture to log it. */
  sync(base: string, caFile: string): Promise<void>;
  output(): string;
}

const SYNC = '/layover-sync-';

export async function startFixture(sandbox: Sandbox, script: string, args: string[]): Promise<FixtureProcess> {
  const child = sandbox.spawn(process.execPath, [script, ...args]);
  const lines: FixtureLine[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = (partial + chunk.toString('utf8')).split('\n');
    partial = text.pop() ?? '';
    for (const raw of text) if (raw) lines.push(JSON.parse(raw) as FixtureLine);
    for (const wake of waiters) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));

  const waitFor = (match: (line: FixtureLine) => boolean, timeoutMs = 10_000): Promise<FixtureLine> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = lines.find(match);
        if (found) done(null, found);
        else if (child.exitCode !== null || child.signalCode !== null) done(new Error(`${script} exited:\n${stderr}`));
      };
      const done = (error: Error | null, line?: FixtureLine): void => {
        clearTimeout(timer);
        clearInterval(exitPoll);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(line!);
      };
      const timer = setTimeout(() => done(new Error(`${script}: no matching line within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
      const exitPoll = setInterval(check, 200);
      waiters.add(check);
      check();
    });

  const ready = await waitFor((line) => 'listening' in line, 20_000);
  let syncs = 0;
  return {
    child,
    ready,
    requests: () => lines.filter((line) => 'method' in line && !String(line.path).startsWith(SYNC)),
    waitFor,
    async sync(base, caFile) {
      const path = `${SYNC}${++syncs}`;
      const curl = await sandbox.exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '10', '--cacert', caFile, `${base}${path}`]);
      if (curl.code !== 0) throw new Error(`${script} sync: ${curl.stderr}`);
      await waitFor((line) => line.path === path);
    },
    output: () => stderr,
  };
}
