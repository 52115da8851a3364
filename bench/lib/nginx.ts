/**
 * nginx `proxy_cache` as the second reference proxy (issue 13): Debian's nginx in the bench's sandbox on
 * 127.0.0.5:443 (name registry-nginx.test, certificate from the test CA), caching the upstream registry
 * (https://127.0.0.2, verified with the test CA) the way the nginx-based registry proxies do:
 * `proxy_cache_key $uri` (no host), `proxy_cache_lock on` (one upstream fetch per key; their lock
 * timeout of 880 s, so waiting clients keep waiting for a 1 GiB fill instead of going upstream after
 * nginx's default 5 s; like them, `proxy_cache_lock_age` stays at its 5 s, so a fill that takes longer
 * lets one more request through to the upstream: 2 upstream GETs for 8 clients on a 1 GiB blob),
 * `proxy_cache_valid 200 1d`, `proxy_max_temp_file_size 0`, `use_temp_path=off`, `worker_processes
 * auto`, keep-alive to the upstream. Workers run as root: the sandbox's temp dir is
 * mode 0700, and the workers must enter the cache directory. Access logging is off in the reference
 * (the issue's configuration); `{ accessLog: true }` starts a second instance (127.0.0.6) that logs
 * every request as docker-registry-proxy's caching layer does: one JSON line (its `tweaked` format),
 * unbuffered, into a pipe that `cat` drains into /dev/null (a FIFO: nginx cannot open the socket
 * Node gives a child as stdout), as Layover writes its request lines to a pipe the bench reads (and
 * parses). Answers carry `X-Cache-Status` (HIT, MISS, ...).
 *
 * Everything (config, pid, error log, cache, temp files) lives in one directory of the sandbox, removed
 * with the sandbox after nginx has stopped. `daemon off`, so the spawned process is the master.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIRECT_HOST, REGISTRY_ADDRESS, type Bench } from '../../test/bench/bench.js';
import { stopChild } from '../../test/bench/sandbox.js';
import { childPids } from './process-stats.js';
import type { Server } from './servers.js';

export const NGINX_ADDRESS = '127.0.0.5';
export const NGINX_HOST = 'registry-nginx.test';
/** The instance that writes an access log (startNginx's `accessLog`). */
export const LOGGING_NGINX_ADDRESS = '127.0.0.6';
export const LOGGING_NGINX_HOST = 'registry-nginx-log.test';

export interface NginxProxy extends Server {
  /** Waits until nginx has committed the cached answer for `path` (its cache file holds `size` bytes of body). */
  waitForCached(path: string, size: number, timeoutMs?: number): Promise<void>;
}

export async function startNginx(bench: Bench, { accessLog = false }: { accessLog?: boolean } = {}): Promise<NginxProxy> {
  const { sandbox, ca } = bench;
  const address = accessLog ? LOGGING_NGINX_ADDRESS : NGINX_ADDRESS;
  const host = accessLog ? LOGGING_NGINX_HOST : NGINX_HOST;
  const dir = join(sandbox.dir, `nginx-${address}`);
  const cacheDir = join(dir, 'cache');
  for (const sub of ['cache', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  const tls = await ca.issue(`nginx-${address}`, [host, address]);
  const pidFile = join(dir, 'nginx.pid');
  const errorLog = join(dir, 'error.log');
  const configFile = join(dir, 'nginx.conf');
  const accessLogFile = accessLog ? join(dir, 'access.fifo') : undefined;
  if (accessLogFile) {
    execFileSync('mkfifo', [accessLogFile]);
    // Its reader, a collector that keeps nothing (a pipe nobody read would stop the workers once full);
    // it ends when nginx closes the pipe, and the sandbox's end kills it in any case.
    sandbox.spawn('sh', ['-c', 'exec cat -- "$0" > /dev/null', accessLogFile]);
  }
  writeFileSync(configFile, nginxConfig({ dir, cacheDir, pidFile, errorLog, certFile: tls.certFile, keyFile: tls.keyFile, caFile: ca.certFile, address, host, accessLogFile }));

  const child = sandbox.spawn('nginx', ['-p', dir, '-c', configFile, '-e', errorLog]);
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  sandbox.onDestroy(async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  });
  const master = child.pid;
  if (master === undefined) throw new Error('nginx: not started');
  await waitUntil(() => existsSync(pidFile) && childPids(master).length > 0, 10_000, () => {
    const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
    return `nginx did not start (exit ${child.exitCode}):\n${output}${log}`;
  });
  const endpoint = { host, address, caFile: ca.certFile };
  // One request through to the upstream proves the TLS setup on both sides before anything is measured.
  const ping = await sandbox.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca.certFile, '--resolve', `${host}:443:${address}`, `https://${host}/v2/`]);
  if (ping.stdout !== '200') throw new Error(`nginx: GET /v2/ answered ${ping.stdout}: ${ping.stderr}\n${readFileSync(errorLog, 'utf8')}`);

  const cacheFile = (path: string): string => {
    const md5 = createHash('md5').update(path).digest('hex');
    return join(cacheDir, md5.slice(-1), md5.slice(-3, -1), md5);
  };
  return {
    label: accessLog ? 'nginx, access log' : 'nginx proxy_cache',
    endpoint,
    pid: master,
    cpuPids: () => [master, ...childPids(master)],
    rssPids: () => childPids(master),
    async waitForCached(path, size, timeoutMs = 120_000) {
      // The cache file appears (renamed from its temp name) only once complete; it starts with nginx's header.
      const file = cacheFile(path);
      await waitUntil(() => existsSync(file) && statSync(file).size >= size, timeoutMs, () => `nginx: ${path} not cached within ${timeoutMs} ms`);
    },
  };
}

async function waitUntil(ready: () => boolean, timeoutMs: number, failure: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(failure());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface ConfigPaths {
  dir: string;
  cacheDir: string;
  pidFile: string;
  errorLog: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  address: string;
  host: string;
  /** A pipe for docker-registry-proxy's access log; none: no access log. */
  accessLogFile: string | undefined;
}

/** docker-registry-proxy's `tweaked` access log format (its caching layer's), one JSON object per request. */
const REGISTRY_PROXY_LOG_FORMAT = `log_format tweaked escape=json '{"access_time":"$time_local","upstream_cache_status":"$upstream_cache_status","method":"$request_method","uri":"$uri","status":"$status","bytes_sent":"$body_bytes_sent","upstream_response_time":"$upstream_response_time","host":"$host","proxy_host":"$proxy_host","upstream":"$upstream_addr"}';`;

function nginxConfig(p: ConfigPaths): string {
  const temp = (kind: string): string => `${kind}_temp_path ${join(p.dir, 'tmp', kind)};`;
  return `daemon off;
master_process on;
worker_processes auto;
user root root;
pid ${p.pidFile};
error_log ${p.errorLog} warn;
events { worker_connections 4096; }
http {
  ${p.accessLogFile ? `${REGISTRY_PROXY_LOG_FORMAT}\n  access_log ${p.accessLogFile} tweaked;` : 'access_log off;'}
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
  tcp_nopush on;
  keepalive_requests 1000000;
  proxy_cache_path ${p.cacheDir} levels=1:2 keys_zone=registry:16m max_size=64g inactive=60d use_temp_path=off;
  upstream registry {
    server ${REGISTRY_ADDRESS}:443;
    keepalive 32;
  }
  server {
    listen ${p.address}:443 ssl;
    server_name ${p.host};
    ssl_certificate ${p.certFile};
    ssl_certificate_key ${p.keyFile};
    ssl_session_cache shared:tls:10m;
    location / {
      proxy_pass https://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host ${DIRECT_HOST};
      proxy_ssl_server_name on;
      proxy_ssl_name ${DIRECT_HOST};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${p.caFile};
      proxy_ssl_session_reuse on;
      proxy_read_timeout 900s;
      proxy_cache registry;
      proxy_cache_key $uri;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 880s;
      proxy_cache_valid 200 1d;
      proxy_max_temp_file_size 0;
      add_header X-Cache-Status $upstream_cache_status always;
    }
  }
}
`;
}

