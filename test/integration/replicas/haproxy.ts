/**
 * haproxy (Debian) as the load balancer in front of Layover replicas inside a sandbox: TCP mode on
 * `listen` (TLS passes through to the replicas), health checks over HTTP on each replica's /readyz
 * (port 80), round robin, and a connection a replica refuses is sent to another one (retries with
 * redispatch). `status()` reads what haproxy thinks of each replica from its stats socket, a Unix
 * socket in the sandbox's directory (reachable from outside the namespace).
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Sandbox } from '../../bench/sandbox.js';

export interface Haproxy {
  /** Each server's state as haproxy sees it: `UP`, `DOWN`, `MAINT`, ... (a check in flight adds e.g. ` 1/2`). */
  status(): Promise<Record<string, string>>;
  /** Resolves once haproxy says `server` is UP (or DOWN with `up: false`); throws after `timeoutMs`. */
  waitFor(server: string, up: boolean, timeoutMs?: number): Promise<void>;
  output(): string;
}

export interface HaproxyOptions {
  /** `address:port` haproxy listens on. */
  listen: string;
  /** Server name -> replica address (HTTPS on :443, /readyz on :80). */
  servers: Record<string, string>;
  /** How often each replica's /readyz is asked; one failed check takes it out, one good one brings it back. */
  checkIntervalMs: number;
}

export async function startHaproxy(sandbox: Sandbox, options: HaproxyOptions): Promise<Haproxy> {
  const socket = join(sandbox.dir, 'haproxy.sock');
  const config = join(sandbox.dir, 'haproxy.cfg');
  const servers = Object.entries(options.servers).map(([name, address]) => `  server ${name} ${address}:443 check addr ${address} port 80`);
  writeFileSync(
    config,
    [
      'global',
      `  stats socket ${socket} mode 600 level admin`,
      '  maxconn 4096',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      // A replica that no longer accepts (its drain is over) refuses the connection: try another one.
      '  retries 3',
      '  option redispatch 1',
      'frontend layover',
      `  bind ${options.listen}`,
      '  default_backend replicas',
      'backend replicas',
      '  balance roundrobin',
      '  option httpchk',
      '  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost',
      '  http-check expect status 200',
      `  default-server inter ${options.checkIntervalMs} fall 1 rise 1`,
      ...servers,
      '',
    ].join('\n'),
  );
  const child = sandbox.spawn('haproxy', ['-db', '-f', config]);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  const status = async (): Promise<Record<string, string>> => {
    const stats = connect(socket);
    let text = '';
    stats.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    stats.end('show stat\n');
    await once(stats, 'close');
    const [header, ...rows] = text.split('\n').filter(Boolean);
    const fields = (header ?? '').replace(/^# /, '').split(',');
    const at = (name: string): number => fields.indexOf(name);
    const result: Record<string, string> = {};
    for (const row of rows.map((line) => line.split(','))) {
      if (row[at('pxname')] === 'replicas' && row[at('svname')] !== 'BACKEND') result[row[at('svname')]!] = row[at('status')]!;
    }
    return result;
  };

  const waitFor = async (server: string, up: boolean, timeoutMs = 15_000): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${output}`);
      const state = await status().catch(() => ({}) as Record<string, string>);
      if (state[server]?.startsWith('UP') === up && (up || state[server]?.startsWith('DOWN'))) return;
      if (performance.now() > deadline) throw new Error(`haproxy: ${server} not ${up ? 'UP' : 'DOWN'} within ${timeoutMs} ms (${JSON.stringify(state)}):\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  // Up once its stats socket answers.
  const deadline = performance.now() + 10_000;
  while (Object.keys(await status().catch(() => ({}))).length === 0) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`haproxy did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { status, waitFor, output: () => output };
}
