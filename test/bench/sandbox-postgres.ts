/**
 * Debian's real PostgreSQL 15 inside a bench sandbox, on a fixed address and port of the namespace
 * (test/helpers/postgres-server.ts runs one on the host's loopback, which a process inside the
 * namespace cannot reach): a cluster of its own from `initdb`, run as the unprivileged `postgres` user
 * through `setpriv` (initdb and postgres refuse root), scram password authentication for user
 * `layover`, database `layover`. Its directory sits beside the sandbox's (the sandbox's own temp dir is
 * root's alone, and postgres must own its data) and goes with the sandbox, or with the sweep of
 * orphans. `stop()` is postgres' fast shutdown (clients cut at once, as in an outage); `start()` brings
 * it back on the same data.
 *
 *   const postgres = await startSandboxPostgres(bench.sandbox, { address: '127.0.0.8' });
 *   // CACHE_INDEX=postgres.url
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Sandbox, stopChild } from './sandbox.js';
import { waitForOutput } from './wait-for-output.js';

const BIN = '/usr/lib/postgresql/15/bin';
const USER = 'layover';
const PASSWORD = 'fleet-postgres-password-5678';
const run = promisify(execFile);

export interface SandboxPostgres {
  readonly address: string;
  readonly port: number;
  /** postgres://layover:password@address:port/layover */
  readonly url: string;
  readonly running: boolean;
  /** Runs one SQL statement with psql in the `layover` database; rows as psql -tA prints them. */
  sql(statement: string): Promise<string>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const asPostgres = (cmd: string, args: string[]): [string, string[]] => ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];

export async function startSandboxPostgres(sandbox: Sandbox, options: { address: string; port?: number }): Promise<SandboxPostgres> {
  const { address } = options;
  const port = options.port ?? 5432;
  // Named like the sandbox's own dir, so sweepOrphans() removes it too if this process is killed.
  const root = mkdtempSync(join(tmpdir(), `${sandbox.name}-`));
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    // SIGINT is postgres' fast shutdown: clients are disconnected at once.
    if (child) await stopChild(child, 'SIGINT');
  };
  sandbox.onDestroy(async () => {
    await stop();
    rmSync(root, { recursive: true, force: true });
  });

  const data = join(root, 'data');
  const sockets = join(root, 'run');
  const [uid, gid] = await Promise.all(['-u', '-g'].map(async (flag) => Number((await run('id', [flag, 'postgres'])).stdout.trim())));
  chmodSync(root, 0o700);
  mkdirSync(sockets);
  const pwfile = join(root, 'pwfile');
  writeFileSync(pwfile, `${PASSWORD}\n`);
  for (const path of [root, sockets, pwfile]) chownSync(path, uid!, gid!);
  const [initdb, initdbArgs] = asPostgres(`${BIN}/initdb`, ['-D', data, '-U', USER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
  await run(initdb, initdbArgs);
  rmSync(pwfile);

  const psql = async (database: string, statement: string): Promise<string> => {
    const result = await sandbox.exec(`${BIN}/psql`, ['-h', address, '-p', String(port), '-U', USER, '-d', database, '-v', 'ON_ERROR_STOP=1', '-tAc', statement], {
      env: { PGPASSWORD: PASSWORD },
      timeoutMs: 15_000,
    });
    if (result.code !== 0) throw new Error(`psql ${statement}: ${result.stderr}`);
    return result.stdout;
  };

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    // fsync off: a test cluster need not survive a power cut, and it is much faster on a shared disk.
    const [pg, pgArgs] = asPostgres(`${BIN}/postgres`, ['-D', data, '-h', address, '-p', String(port), '-k', sockets, '-c', 'fsync=off', '-c', 'max_connections=60']);
    child = sandbox.spawn(pg, pgArgs);
    await waitForOutput(child, 'postgres', (text) => text.includes('ready to accept connections'), 30_000);
  };
  await start();
  await psql('postgres', `CREATE DATABASE ${USER}`);

  return {
    address,
    port,
    url: `postgres://${USER}:${PASSWORD}@${address}:${port}/${USER}`,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    sql: (statement) => psql(USER, statement),
    stop,
    start,
  };
}
