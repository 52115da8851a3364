/**
 * Debian's real PostgreSQL 15 for the shared-index tests: a cluster of its own from `initdb` in a temp
 * dir (not the machine's cluster or service), run as the unprivileged `postgres` user (initdb and
 * postgres refuse root) through `setpriv`, listening on 127.0.0.1 with a free port and no Unix socket
 * outside its dir; password authentication (scram) for user `layover`, database `layover`.
 * `stop()`/`start()` take it down (fast shutdown) and up again on the same port and data; `close()`
 * stops it and removes the directory.
 *
 *   const postgres = await startPostgres();
 *   afterAll(() => postgres.close());
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { accepts, freeLoopbackPort, stopChild } from './server-process.js';

const BIN = '/usr/lib/postgresql/15/bin';
const READY_TIMEOUT_MS = 30_000;
const run = promisify(execFile);

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** postgres://layover:password@host:port/layover */
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: group } = await run('id', ['-g', 'postgres']);
  return { uid: Number(stdout.trim()), gid: Number(group.trim()) };
}

const asPostgres = (cmd: string, args: string[]): [string, string[]] => ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];

export async function startPostgres(): Promise<PostgresServer> {
  const host = '127.0.0.1';
  const user = 'layover';
  const password = 'pg-test-password-5678';
  const root = mkdtempSync(join(tmpdir(), 'layover-postgres-'));
  const data = join(root, 'data');
  const sockets = join(root, 'run');
  const { uid, gid } = await postgresUser();
  let child: ChildProcess | null = null;
  let output = '';
  try {
    chmodSync(root, 0o700);
    mkdirSync(sockets);
    writeFileSync(join(root, 'pwfile'), `${password}\n`);
    for (const path of [root, sockets, join(root, 'pwfile')]) chownSync(path, uid, gid);
    const [cmd, args] = asPostgres(`${BIN}/initdb`, ['-D', data, '-U', user, `--pwfile=${join(root, 'pwfile')}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
    await run(cmd, args);
    rmSync(join(root, 'pwfile'));
    const port = await freeLoopbackPort(host);
    const start = async (): Promise<void> => {
      // fsync off: a test cluster need not survive a power cut, and it is much faster on a shared disk.
      const [pg, pgArgs] = asPostgres(`${BIN}/postgres`, ['-D', data, '-h', host, '-p', String(port), '-k', sockets, '-c', 'fsync=off', '-c', 'max_connections=40']);
      const started = spawn(pg, pgArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = started;
      output = '';
      started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      for (const deadline = Date.now() + READY_TIMEOUT_MS; ; ) {
        if (started.exitCode !== null) throw new Error(`postgres exited (${started.exitCode}): ${output}`);
        if (output.includes('ready to accept connections') && (await accepts(host, port))) {
          await run(`${BIN}/psql`, ['-h', host, '-p', String(port), '-U', user, '-d', 'postgres', '-tAc', "SELECT 1 FROM pg_database WHERE datname = 'layover'"], { env: { ...process.env, PGPASSWORD: password } }).then(async ({ stdout }) => {
            if (stdout.trim() === '1') return;
            await run(`${BIN}/createdb`, ['-h', host, '-p', String(port), '-U', user, 'layover'], { env: { ...process.env, PGPASSWORD: password } });
          });
          return;
        }
        if (Date.now() > deadline) throw new Error(`postgres did not start within ${READY_TIMEOUT_MS} ms: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const stop = async (): Promise<void> => {
      const running = child;
      child = null;
      // SIGINT is postgres' fast shutdown: clients are disconnected at once, as in a real outage.
      await stopChild(running, 'SIGINT');
    };
    await start();
    return {
      host,
      port,
      user,
      password,
      url: `postgres://${user}:${password}@${host}:${port}/layover`,
      stop,
      start,
      async close() {
        await stop();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopChild(child);
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}
