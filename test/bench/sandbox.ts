/**
 * A loopback-only network namespace for one test file: `ip netns add layover-<pid>-<n>`, `lo` up, and
 * nothing else, so 127.0.0.0/8 is all ours (Layover on 127.0.0.1, the upstream registry on
 * 127.0.0.2, its resolver on 127.0.0.3) and any other address fails at once with "network
 * unreachable" instead of leaking. `/etc/netns/<name>/` gives programs run inside it a resolv.conf
 * pointing at Layover's DNS (127.0.0.1) and a hosts file with only localhost.
 *
 * Every program runs through `ip netns exec` with a clean environment (PATH, HOME and what the caller
 * passes), so no host proxy or LAYOVER_* setting leaks in. Clean-up: `destroy()`, plus a synchronous
 * sweep on process exit and SIGTERM/SIGINT, plus, at the next start, removal of sandboxes whose
 * creating process is gone (a worker killed with SIGKILL).
 */
import { type ChildProcess, execFileSync, spawn as spawnChild } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../helpers/server-process.js';

export interface RunOptions {
  /** Extra environment; the base is only PATH and HOME (a temp dir of the sandbox). */
  env?: Record<string, string>;
  cwd?: string;
  /** A file bind-mounted over /etc/resolv.conf for this program only (e.g. the upstream resolver's). */
  resolvConf?: string;
}

export interface ExecOptions extends RunOptions {
  /** Written to the program's stdin. */
  input?: string | Buffer;
  /** Killed (SIGKILL) after this long; default 120 s. */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  readonly name: string;
  /** A private temp dir, removed by destroy(): put storage, certificates and layouts here. */
  readonly dir: string;
  /** Runs a program inside the namespace to completion; never throws for a non-zero exit. */
  exec(cmd: string, args: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Starts a program inside the namespace; destroy() kills it if still running. */
  spawn(cmd: string, args: string[], options?: RunOptions): ChildProcess;
  /** Runs before the namespace is removed, last registered first. */
  onDestroy(cleanup: () => Promise<void> | void): void;
  /** Kills everything inside, deletes the namespace, /etc/netns/<name> and `dir`. Safe to call twice. */
  destroy(): Promise<void>;
}

const PREFIX = 'layover-';
/** name -> temp dir of every sandbox this process has not destroyed yet. */
const live = new Map<string, string>();
let counter = 0;
let swept = false;

export async function createSandbox(): Promise<Sandbox> {
  if (!swept) {
    swept = true;
    sweepOrphans();
    installExitHooks();
  }
  const name = `${PREFIX}${process.pid}-${counter++}`;
  await addNamespace(name);
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  live.set(name, dir);
  const home = join(dir, 'home');
  mkdirSync(home);
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    ip(['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    const etc = join('/etc/netns', name);
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n');
    writeFileSync(join(etc, 'hosts'), '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n');
    if (existsSync('/etc/nsswitch.conf')) writeFileSync(join(etc, 'nsswitch.conf'), 'hosts: files dns\n');
  } catch (error) {
    removeSync(name, dir);
    throw error;
  }

  const argv = (cmd: string, args: string[], options: RunOptions): string[] => {
    const inner = options.resolvConf
      ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', options.resolvConf, cmd, ...args]
      : [cmd, ...args];
    return ['netns', 'exec', name, ...inner];
  };
  const envFor = (options: RunOptions): Record<string, string> => ({ PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: home, ...options.env });

  let destroyed: Promise<void> | undefined;
  const sandbox: Sandbox = {
    name,
    dir,
    spawn(cmd, args, options = {}) {
      const child = spawnChild('ip', argv(cmd, args, options), { env: envFor(options), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      return child;
    },
    async exec(cmd, args, options = {}) {
      const child = spawnChild('ip', argv(cmd, args, options), { env: envFor(options), cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(child);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
      const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
      clearTimeout(timer);
      children.splice(children.indexOf(child), 1);
      const stderr = Buffer.concat(err).toString('utf8') + (signal ? `\n[killed by ${signal}]` : '');
      return { code, stdout: Buffer.concat(out).toString('utf8'), stderr };
    },
    onDestroy(cleanup) {
      cleanups.push(cleanup);
    },
    destroy() {
      destroyed ??= (async () => {
        for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
        await Promise.all(children.map((child) => stopChild(child)));
        removeSync(name, dir);
      })();
      return destroyed;
    },
  };
  return sandbox;
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process has exited. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** Names of the sandboxes that exist now (all processes). */
export function listSandboxes(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(PREFIX));
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Parallel first uses of `ip netns add` race on making /run/netns a shared mount: retry. */
async function addNamespace(name: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      ip(['netns', 'add', name]);
      return;
    } catch (error) {
      if (attempt >= 4) throw new Error(`ip netns add ${name} failed: ${String((error as { stderr?: unknown }).stderr ?? error)}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
    }
  }
}

/** Kills whatever still runs in the namespace, then removes it. Synchronous, so exit hooks can use it. */
function removeSync(name: string, dir?: string): void {
  try {
    for (const pid of ip(['netns', 'pids', name]).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // namespace already gone
  }
  try {
    ip(['netns', 'delete', name]);
  } catch {
    // already deleted
  }
  rmSync(join('/etc/netns', name), { recursive: true, force: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
  live.delete(name);
}

/** Removes sandboxes whose creating process is gone (runs once, at the first createSandbox). */
export function sweepOrphans(): void {
  const orphaned = (name: string): boolean => {
    const pid = Number(/^layover-(\d+)-\d+/.exec(name)?.[1]);
    return pid > 0 && pid !== process.pid && !processAlive(pid);
  };
  for (const name of listSandboxes()) if (orphaned(name)) removeSync(name);
  for (const entry of readdirSync(tmpdir())) {
    if (/^layover-\d+-\d+-\w{6}$/.test(entry) && orphaned(entry)) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

function installExitHooks(): void {
  const sweep = (): void => {
    for (const [name, dir] of [...live]) removeSync(name, dir);
  };
  process.on('exit', sweep);
  // vitest ends a forks worker with SIGTERM (and has its own listener); a SIGKILLed worker (vitest
  // interrupted with Ctrl-C) leaves its sandboxes to sweepOrphans() of the next run.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = (): void => {
      sweep();
      // Alone, our listener would cancel the default action: restore it and re-raise.
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}
