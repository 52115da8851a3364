/**
 * Debian's real redis-server for the shared-index tests: its own temp dir (append-only file, so data
 * survives a stop and start), on 127.0.0.1 with a free port and a password, in the foreground as a child
 * process. `stop()`/`start()` take it down and up again on the same port and data (the outage tests);
 * `close()` stops it and removes the directory.
 *
 *   const redis = await startRedis();
 *   afterAll(() => redis.close());
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accepts, freeLoopbackPort, stopChild } from './server-process.js';

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly password: string;
  /** redis://:password@host:port */
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;

export async function startRedis(): Promise<RedisServer> {
  const host = '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'layover-redis-'));
  const password = 'redis-test-password-1234';
  const port = await freeLoopbackPort(host);
  let child: ChildProcess | null = null;
  let output = '';
  const start = async (): Promise<void> => {
    const args = ['--bind', host, '--port', String(port), '--dir', dir, '--requirepass', password, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes'];
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    for (const deadline = Date.now() + READY_TIMEOUT_MS; ; ) {
      if (started.exitCode !== null) throw new Error(`redis-server exited (${started.exitCode}): ${output}`);
      if (output.includes('Ready to accept connections') && (await accepts(host, port))) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not start within ${READY_TIMEOUT_MS} ms: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = null;
    output = '';
    await stopChild(running);
  };
  try {
    await start();
  } catch (error) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host,
    port,
    password,
    url: `redis://:${password}@${host}:${port}`,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
