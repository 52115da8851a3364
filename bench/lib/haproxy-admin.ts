/**
 * Takes replicas in and out of the haproxy of test/integration/replicas/haproxy.ts through its admin
 * socket (`<sandbox dir>/haproxy.sock`, level admin), so one load balancer serves a benchmark's 1-replica
 * and 3-replica cases: `maint` stops new connections to a server at once, `ready` lets them in again.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Haproxy } from '../../test/integration/replicas/haproxy.js';
import type { Sandbox } from '../../test/bench/sandbox.js';

/** Leaves exactly `active` of `all` servers in service, and waits until haproxy says so. */
export async function serveOnly(sandbox: Sandbox, haproxy: Haproxy, all: readonly string[], active: readonly string[]): Promise<void> {
  for (const server of all) {
    const state = active.includes(server) ? 'ready' : 'maint';
    const socket = connect(join(sandbox.dir, 'haproxy.sock'));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.end(`set server replicas/${server} state ${state}\n`);
    await once(socket, 'close');
    if (answer.trim() !== '') throw new Error(`haproxy: set server ${server} state ${state}: ${answer.trim()}`);
  }
  for (const server of all) {
    if (active.includes(server)) await haproxy.waitFor(server, true);
    else await waitForMaintenance(haproxy, server);
  }
}

async function waitForMaintenance(haproxy: Haproxy, server: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!(await haproxy.status())[server]?.startsWith('MAINT')) {
    if (performance.now() > deadline) throw new Error(`haproxy: ${server} not in maintenance:\n${haproxy.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
