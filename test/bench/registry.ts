/**
 * The upstream: the real CNCF distribution registry 2.8 (Debian's `docker-registry serve`) inside a
 * sandbox on `address:443`, TLS from the test CA, filesystem storage in the sandbox's temp dir, and
 * optional bcrypt htpasswd auth (`htpasswd -Bbn`). No `http.host`: it would make upload Locations
 * absolute, and clients would then resolve that name themselves.
 *
 * `requests()` parses the access log (Apache combined format, one line per request on stdout) so a
 * test can prove what reached the upstream, e.g. that no blob GET happened on a cache hit.
 * `stop()` and `start()` again keep the storage and the request log.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Sandbox, stopChild } from './sandbox.js';
import type { TestCa } from './test-ca.js';

const run = promisify(execFile);

export interface RegistryOptions {
  /** Listen address inside the sandbox; default 127.0.0.2. */
  address?: string;
  /** Listen port; default 443. */
  port?: number;
  /** Names the certificate covers; default registry.test and registry-direct.test. */
  names?: string[];
  auth?: { htpasswd: Record<string, string> };
  /**
   * Top-level sections of the registry's config.yml that replace the defaults, e.g.
   * `{ auth: { token: {...} } }` or `{ storage: { s3: {...} } }` (sections are replaced whole).
   */
  configSections?: Record<string, unknown>;
}

export interface RegistryRequest {
  method: string;
  /** Path and query, as the client sent it. */
  path: string;
  status: number;
  /** Response size in bytes (0 when the log says "-"). */
  bytes: number;
  userAgent: string;
}

export interface Registry {
  readonly address: string;
  readonly names: string[];
  /** user:password of the first htpasswd user, for `--dest-creds`/`--src-creds`; undefined without auth. */
  readonly credentials: string | undefined;
  readonly storageDir: string;
  /** Every request logged so far, across restarts, oldest first. */
  requests(): RegistryRequest[];
  /** Forgets the requests logged so far (e.g. after pushing the fixtures). */
  clearRequests(): void;
  /**
   * Waits until the access log has caught up: the registry writes a line after the response, so a
   * client can finish before its line arrives. Sends a marker request (left out of requests()) and
   * waits for its line; call it before asserting that something did NOT reach the upstream.
   */
  sync(): Promise<void>;
  /** Waits (up to `timeoutMs`, default 10 s) for a logged request matching `match`, and returns it. */
  waitForRequest(match: (request: RegistryRequest) => boolean, timeoutMs?: number): Promise<RegistryRequest>;
  /** The registry's own (logrus) output, for assertion messages. */
  log(): string;
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

// 127.0.0.2 - - [07/Jan/2026:10:00:00 +0000] "GET /v2/a/b/c/manifests/v1 HTTP/1.1" 200 1234 "" "skopeo/1.9.3"
const SYNC_PATH = '/v2/?layover-bench-sync=';
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;

export async function startRegistry(sandbox: Sandbox, ca: TestCa, options: RegistryOptions = {}): Promise<Registry> {
  const address = options.address ?? '127.0.0.2';
  const hostPort = `${address}:${options.port ?? 443}`;
  const names = options.names ?? ['registry.test', 'registry-direct.test'];
  // Two registries may share an address on different ports (one host name, two registries).
  const id = options.port === undefined ? `registry-${address}` : `registry-${address}-${options.port}`;
  const base = join(sandbox.dir, id);
  const storageDir = join(base, 'storage');
  mkdirSync(storageDir, { recursive: true });
  const tls = await ca.issue(id, [...names, address]);

  const users = Object.entries(options.auth?.htpasswd ?? {});
  let auth: object | undefined;
  if (users.length > 0) {
    const lines = await Promise.all(users.map(async ([user, password]) => (await run('htpasswd', ['-Bbn', user, password])).stdout.trim()));
    const htpasswd = join(base, 'htpasswd');
    writeFileSync(htpasswd, `${lines.join('\n')}\n`);
    auth = { htpasswd: { realm: 'layover-test', path: htpasswd } };
  }
  // JSON is YAML: the registry reads this file as its config.yml.
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: storageDir }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: hostPort, tls: { certificate: tls.certFile, key: tls.keyFile }, headers: { 'X-Content-Type-Options': ['nosniff'] } },
    ...(auth ? { auth } : {}),
    ...options.configSections,
  };
  const configFile = join(base, 'config.yml');
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const requests: RegistryRequest[] = [];
  const arrived = new EventEmitter();
  let syncs = 0;
  let output = '';
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = sandbox.spawn('docker-registry', ['serve', configFile]);
    child = proc;
    let partial = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const m = ACCESS_LINE.exec(line);
        if (m) {
          const request = { method: m[1]!, path: m[2]!, status: Number(m[3]), bytes: m[4] === '-' ? 0 : Number(m[4]), userAgent: m[5]! };
          if (!request.path.startsWith(SYNC_PATH)) requests.push(request);
          arrived.emit('request', request);
        } else output += `${line}\n`;
      }
    });
    let err = '';
    const listening = new Promise<void>((resolve, reject) => {
      proc.stderr?.on('data', (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        output += text;
        err += text;
        // Logged right after the listener is bound, before Serve().
        if (/msg="listening on [^"]*, tls"/.test(err)) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`docker-registry exited with ${code} in ${sandbox.name}:\n${output}`)));
    });
    const timer = setTimeout(() => void stopChild(proc, 'SIGKILL'), 15_000);
    try {
      await listening;
    } finally {
      clearTimeout(timer);
    }
  };

  const registry: Registry = {
    address,
    names,
    credentials: users[0] ? `${users[0][0]}:${users[0][1]}` : undefined,
    storageDir,
    requests: () => [...requests],
    clearRequests: () => void requests.splice(0),
    async sync() {
      const path = `${SYNC_PATH}${++syncs}`;
      const seen = waitFor((r) => r.path === path, 10_000);
      const curl = await sandbox.exec('curl', ['-sS', '-o', '/dev/null', '--cacert', ca.certFile, `https://${hostPort}${path}`]);
      if (curl.code !== 0) throw new Error(`registry.sync: ${curl.stderr}`);
      await seen;
    },
    waitForRequest: (match, timeoutMs = 10_000) => waitFor(match, timeoutMs, requests.find(match)),
    log: () => output,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    start,
    stop: async () => {
      if (child) await stopChild(child);
    },
  };
  function waitFor(match: (r: RegistryRequest) => boolean, timeoutMs: number, already?: RegistryRequest): Promise<RegistryRequest> {
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        arrived.off('request', onRequest);
        reject(new Error(`registry: no matching request within ${timeoutMs} ms; seen: ${JSON.stringify(requests)}`));
      }, timeoutMs);
      const onRequest = (r: RegistryRequest): void => {
        if (!match(r)) return;
        clearTimeout(timer);
        arrived.off('request', onRequest);
        resolve(r);
      };
      arrived.on('request', onRequest);
    });
  }
  sandbox.onDestroy(() => registry.stop());
  await start();
  return registry;
}
