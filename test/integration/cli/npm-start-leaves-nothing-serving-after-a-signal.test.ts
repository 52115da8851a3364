/**
 * Issue 10, "what a new user hits": `npm start` ran npm -> sh -> node, and a SIGTERM to npm left Layover
 * serving on every port. Now the chain execs down to node, which npm's signal relay reaches; and a Ctrl-C,
 * which reaches npm and node at once (and npm relays it again), is one request to stop, while a second
 * Ctrl-C exits at once. The real `npm start` in a copy of the project, on loopback ports.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { copyProject, startIn, type Started } from './project-copy.js';
import { processAlive } from '../../helpers/server-process.js';

let project: ReturnType<typeof copyProject>;

beforeAll(() => {
  project = copyProject();
}, 20_000);
afterAll(() => project.remove());

/** `npm start` with every listener on a loopback port the OS picks; resolves once Layover listens. */
async function npmStart(extra: string[] = []): Promise<Started & { pid: number; ports: number[] }> {
  const args = ['start', '--', '--data-dir', `${project.dir}/data`, '--https', '127.0.0.1:0', '--http', '127.0.0.1:0', '--proxy', '127.0.0.1:0'];
  args.push('--dns', 'off', '--advertise', '127.0.0.1', '--upstream-dns', '127.0.0.1:9', ...extra);
  const started = startIn(project.dir, 'npm', args, onTestFinished);
  const line = await started.logged('layover is listening');
  const ports = [line.https, line.http, line.proxy].map((address) => Number(String(address).split(':').pop()));
  return { ...started, pid: line.pid as number, ports };
}

const connectResult = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });

/** Polls until the process is gone; false if it is still there after `ms` (a bound far above a clean exit). */
async function gone(pid: number, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

it('SIGTERM to npm stops Layover: the node process ends and no port answers', async () => {
  const layover = await npmStart();
  for (const port of layover.ports) expect(await connectResult(port)).toBe('connected');
  process.kill(layover.child.pid!, 'SIGTERM');
  await layover.exited;
  expect(await gone(layover.pid), `Layover (pid ${layover.pid}) still runs after npm ended:\n${layover.output()}`).toBe(true);
  for (const port of layover.ports) expect(await connectResult(port)).toBe('ECONNREFUSED');
  expect(layover.output()).toContain('"msg":"shutting down"');
}, 180_000);

it('one Ctrl-C stops gracefully though it arrives twice; a second Ctrl-C exits at once', async () => {
  // A grace far longer than the test: only the second Ctrl-C can end the shutdown in time.
  const layover = await npmStart(['--shutdown-grace', '10m', '--client-header-timeout', '10m']);
  // A request in flight (its headers never complete) holds the graceful shutdown open.
  const inFlight = connect(layover.ports[1]!, '127.0.0.1');
  onTestFinished(() => void inFlight.destroy());
  inFlight.on('error', () => {});
  await new Promise((resolve) => inFlight.once('connect', resolve));
  inFlight.write('GET /v2/ HTTP/1.1\r\nHost: docker.proxy\r\n');

  // A terminal's Ctrl-C signals the whole foreground process group: npm and node.
  process.kill(-layover.child.pid!, 'SIGINT');
  await layover.logged('shutting down');
  // Long enough for npm's relayed copy of the same Ctrl-C to have arrived.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  expect(processAlive(layover.pid), layover.output()).toBe(true);
  expect(layover.output()).not.toContain('exiting at once');

  process.kill(-layover.child.pid!, 'SIGINT');
  expect(await gone(layover.pid), layover.output()).toBe(true);
  expect(layover.output()).toContain('second stop signal: exiting at once');
  await layover.exited;
}, 180_000);
