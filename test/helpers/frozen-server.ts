/**
 * Freezes a real server that a test started (redis-server, postgres) with SIGSTOP: it keeps its
 * listening socket and its connections, the kernel still completes handshakes, but nothing is ever
 * answered. That is a backend that accepts and then says nothing, as behind a network that drops
 * packets. The process is found by the loopback port it listens on; for postgres the postmaster and
 * every backend it forked are frozen. `thaw()` (SIGCONT) is also registered for the end of the test.
 *
 *   const thaw = await freezeServer(redis.port);
 *   ...
 *   await thaw();
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { onTestFinished } from 'vitest';

const run = promisify(execFile);

async function listeningPid(port: number): Promise<number> {
  const { stdout } = await run('ss', ['-Hltnp', `sport = :${port}`]);
  const match = /pid=(\d+)/.exec(stdout);
  if (!match) throw new Error(`nothing listens on port ${port}: ${stdout}`);
  return Number(match[1]);
}

/** The process and its children (postgres backends), by /proc. */
async function withChildren(pid: number): Promise<number[]> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return [pid, ...children.split(/\s+/).filter(Boolean).map(Number)];
}

export async function freezeServer(port: number): Promise<() => Promise<void>> {
  const pids = await withChildren(await listeningPid(port));
  // The parent first: it forks no new child once stopped.
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  let thawed = false;
  const thaw = async (): Promise<void> => {
    if (thawed) return;
    thawed = true;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone already (a backend whose client left).
      }
    }
  };
  onTestFinished(thaw);
  return thaw;
}
