/**
 * Debian's real redis-server inside a bench sandbox, on a fixed address and port of the namespace
 * (test/helpers/redis-server.ts runs one on the host's loopback, which a process inside the
 * namespace cannot reach). Password required, append-only file in the sandbox's temp dir, so the data
 * survives `stop()` and `start()` (the outage tests). The sandbox's destroy() stops it.
 *
 *   const redis = await startSandboxRedis(bench.sandbox, { address: '127.0.0.7' });
 *   // CACHE_INDEX=redis.url
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Sandbox, stopChild } from './sandbox.js';
import { waitForOutput } from './wait-for-output.js';

export interface SandboxRedis {
  readonly address: string;
  readonly port: number;
  /** redis://:password@address:port */
  readonly url: string;
  readonly running: boolean;
  /** Runs `redis-cli` against it (password set); stdout. */
  cli(args: string[]): Promise<string>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const PASSWORD = 'fleet-redis-password-1234';

export async function startSandboxRedis(sandbox: Sandbox, options: { address: string; port?: number }): Promise<SandboxRedis> {
  const { address } = options;
  const port = options.port ?? 6379;
  const dir = join(sandbox.dir, `redis-${address}`);
  mkdirSync(dir, { recursive: true });
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const args = ['--bind', address, '--port', String(port), '--dir', dir, '--requirepass', PASSWORD, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes'];
    child = sandbox.spawn('redis-server', args);
    await waitForOutput(child, 'redis-server', (text) => text.includes('Ready to accept connections'), 15_000);
  };
  const redis: SandboxRedis = {
    address,
    port,
    url: `redis://:${PASSWORD}@${address}:${port}`,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async cli(args) {
      const result = await sandbox.exec('redis-cli', ['-h', address, '-p', String(port), '--no-auth-warning', '-a', PASSWORD, ...args], { timeoutMs: 15_000 });
      if (result.code !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    },
    // SIGTERM: redis-server closes every client connection at once, as a crash of the index would.
    stop: async () => {
      if (child) await stopChild(child);
    },
    start,
  };
  sandbox.onDestroy(() => redis.stop());
  await start();
  return redis;
}
