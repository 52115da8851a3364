/**
 * Issue 12, logs: `layover serve` on a terminal writes one human-readable line per event, to a pipe
 * JSON (what collectors parse), and both end with a line saying it stopped. The terminal is a real
 * pseudo-terminal made by util-linux's `script`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, onTestFinished } from 'vitest';

const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
// Loopback only, every port the OS's choice, no resolver beyond a closed loopback port.
const ARGS = ['serve', '--https', '127.0.0.1:0', '--http', '127.0.0.1:0', '--dns', 'off', '--proxy', 'off', '--advertise', '127.0.0.1', '--upstream-dns', '127.0.0.1:9'];
const quote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;

/** Starts `command`, collects its output, resolves once `ready` appears in it. */
async function start(command: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; output: () => string }> {
  // Its own process group: `script` and the Layover under it are stopped together.
  const child = spawn(command, args, { env: { PATH: process.env.PATH, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!ready.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`not ready:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output: () => output };
}

/** SIGTERM to Layover alone (under `script`, its child: script itself would close the terminal first). */
async function stop(child: ChildProcess, output: () => string, stopped: RegExp, underScript = false): Promise<void> {
  const exited = once(child, 'exit');
  const pid = underScript ? Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]) : child.pid!;
  process.kill(pid, 'SIGTERM');
  await exited;
  expect(output(), JSON.stringify(output().slice(-600))).toMatch(stopped);
}

it('on a terminal: human-readable lines, no JSON, and a last line saying it stopped', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-tty-'));
  // exec: Layover itself is script's child (not a shell waiting for it), so the stop signal reaches it.
  const command = `exec ${[process.execPath, CLI, ...ARGS, '--data-dir', dataDir].map(quote).join(' ')}`;
  // -e: script's exit status is the command's; -f: output flushed as it comes.
  const { child, output } = await start('script', ['-qefc', command, '/dev/null'], /layover is listening/);
  const listening = output().split(/\r?\n/).find((line) => line.includes('layover is listening'))!;
  expect(listening.trimStart().startsWith('{')).toBe(false);
  expect(listening).toMatch(/INFO/);
  expect(output()).not.toMatch(/"msg":/);
  await stop(child, output, /INFO.*layover stopped/, true);
});

it('to a pipe: JSON lines, ending with the stopped line', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-pipe-'));
  const { child, output } = await start(process.execPath, [CLI, ...ARGS, '--data-dir', dataDir], /"msg":"layover is listening"/);
  await stop(child, output, /"msg":"layover stopped"/);
  const lines = output().trim().split('\n');
  expect(lines.every((line) => line.startsWith('{')), output()).toBe(true);
  expect(JSON.parse(lines.at(-1)!).msg).toBe('layover stopped');
});

it('LAYOVER_LOG_FORMAT=pretty asks for human-readable lines on a pipe too', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'layover-pretty-'));
  const { child, output } = await start(process.execPath, [CLI, ...ARGS, '--data-dir', dataDir, '--log-format', 'pretty'], /layover is listening/);
  expect(output()).not.toMatch(/"msg":/);
  await stop(child, output, /layover stopped/);
});
