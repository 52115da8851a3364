/**
 * The four servers a benchmark compares, all inside one bench sandbox (test/bench/bench.ts):
 *
 *   direct   the upstream distribution registry, 127.0.0.2, name registry-direct.test (the reference)
 *   layover  the Layover process, 127.0.0.1, name registry.test (intercepted), Layover's own CA
 *   proxy    a second distribution registry in pull-through mode, 127.0.0.4, name registry-proxy.test,
 *            `proxy.remoteurl: https://127.0.0.2` — the peer REGISTRY-NOTES compares Layover with
 *   nginx    nginx proxy_cache as the nginx-based registry proxies configure it, 127.0.0.5, name
 *            registry-nginx.test (./nginx.ts) — the second peer (issue 13)
 *
 * Each comes with its PIDs, for CPU and memory readings. The pull-through registry is Go: it trusts the
 * test CA through SSL_CERT_FILE, set by a sandbox wrapper because startRegistry() passes no environment.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DIRECT_HOST, INTERCEPTED_HOST, REGISTRY_ADDRESS, type Bench } from '../../test/bench/bench.js';
import type { LayoverProcessOptions } from '../../test/bench/layover-process.js';
import { type Registry, startRegistry } from '../../test/bench/registry.js';
import type { Sandbox } from '../../test/bench/sandbox.js';
import type { Endpoint } from './curl.js';
import { NGINX_ADDRESS, NGINX_HOST, type NginxProxy, startNginx } from './nginx.js';
import { cpuSecondsOf, findPid } from './process-stats.js';

export const PROXY_ADDRESS = '127.0.0.4';
export const PROXY_HOST = 'registry-proxy.test';
export { NGINX_ADDRESS, NGINX_HOST };
/** dnsmasq records for the peers' names (startBench's `extraRecords`), for tools that resolve names themselves (ab, h2load). */
export const PEER_RECORDS: Record<string, string[]> = { [PROXY_HOST]: [PROXY_ADDRESS], [NGINX_HOST]: [NGINX_ADDRESS] };

export interface Server {
  label: string;
  endpoint: Endpoint;
  /** The main process (nginx's master). */
  pid: number;
  /** The processes whose CPU counts: the one process, or nginx's master and workers. */
  cpuPids(): number[];
  /** The processes whose memory is reported: the one process, or nginx's workers. */
  rssPids(): number[];
}

export interface PullThroughRegistry extends Server {
  registry: Registry;
  /** Waits until the registry has stored `digest` locally (its background copy has committed). */
  waitForBlob(digest: string, size: number, timeoutMs?: number): Promise<void>;
}

export interface Servers {
  direct: Server;
  layover: Server;
  proxy: PullThroughRegistry;
  nginx: NginxProxy;
}

/** CPU seconds of every process of `server` so far. */
export const serverCpuSeconds = (server: Server): number => cpuSecondsOf(server.cpuPids());

/** A server that is one process. */
function single(label: string, endpoint: Endpoint, pid: number): Server {
  return { label, endpoint, pid, cpuPids: () => [pid], rssPids: () => [pid] };
}

/**
 * The Layover process of every benchmark, run as `npm start`, the Dockerfile and the systemd example
 * run it: info logging (the harness default is debug), V8's young generation at 2 MB
 * (`--max-semi-space-size=2`), its old generation let grow to twice its live size between full
 * collections (`--heap-growing-percent=100`) and glibc's mmap threshold fixed at 128 KiB (MALLOC_MMAP_THRESHOLD_).
 * LAYOVER_BENCH_NODE_OPTIONS becomes its NODE_OPTIONS, for profiling, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/layover-prof` (written when the benchmark stops it). Its request
 * lines are drained unparsed (no benchmark reads them), as nginx's access log is.
 */
export function layoverOptions(): LayoverProcessOptions {
  const nodeOptions = process.env.LAYOVER_BENCH_NODE_OPTIONS;
  return { flags: { 'log-level': 'info' }, requestLines: 'drained', nodeArgs: ['--max-semi-space-size=2', '--heap-growing-percent=100'], env: { MALLOC_MMAP_THRESHOLD_: '131072', ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) } };
}

/**
 * Starts the pull-through registry and nginx in the bench's sandbox and describes all four servers.
 * nginx's name resolves only through `--resolve` (curl) unless the bench passes PEER_RECORDS to
 * startBench's `extraRecords` (for tools that resolve names themselves).
 */
export async function startServers(bench: Bench): Promise<Servers> {
  const layover = bench.layover;
  if (!layover?.child.pid) throw new Error('startServers: the bench has no Layover process');
  const proxy = await startPullThroughRegistry(bench);
  const nginx = await startNginx(bench);
  return {
    direct: single(
      'registry (direct)',
      { host: DIRECT_HOST, address: REGISTRY_ADDRESS, caFile: bench.ca.certFile },
      findPid(bench.sandbox, `registry-${REGISTRY_ADDRESS}/config.yml`),
    ),
    layover: single('Layover', { host: INTERCEPTED_HOST, address: '127.0.0.1', caFile: layover.caFile }, layover.child.pid),
    proxy,
    nginx,
  };
}

async function startPullThroughRegistry(bench: Bench): Promise<PullThroughRegistry> {
  const { sandbox, ca } = bench;
  const trusting: Sandbox = {
    ...sandbox,
    spawn: (cmd, args, options = {}) => sandbox.spawn(cmd, args, { ...options, env: { ...options.env, SSL_CERT_FILE: ca.certFile } }),
  };
  const registry = await startRegistry(trusting, ca, {
    address: PROXY_ADDRESS,
    names: [PROXY_HOST],
    configSections: { proxy: { remoteurl: `https://${REGISTRY_ADDRESS}` } },
  });
  const blobFile = (digest: string): string => {
    const hex = digest.slice('sha256:'.length);
    return join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  };
  return {
    ...single('registry proxy', { host: PROXY_HOST, address: PROXY_ADDRESS, caFile: ca.certFile }, findPid(sandbox, `registry-${PROXY_ADDRESS}/config.yml`)),
    registry,
    async waitForBlob(digest, size, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(existsSync(blobFile(digest)) && statSync(blobFile(digest)).size === size)) {
        if (Date.now() > deadline) throw new Error(`registry proxy: ${digest} not stored within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
  };
}
