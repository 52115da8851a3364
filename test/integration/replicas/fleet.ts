/**
 * A fleet of Layover replicas sharing one cache, end to end, in one network namespace of its own
 * (test/bench/sandbox.ts): the bench's distribution registry as the upstream (127.0.0.2, test images
 * pushed), s3rver as the bucket (127.0.0.5, test/bench/sandbox-s3.ts; a fixture, as no S3 server is
 * packaged in Debian), a real redis-server (127.0.0.7:6379) or Postgres (127.0.0.8:5432) as the index,
 * and N `layover serve` processes r1…rN on 127.0.0.11… (HTTPS :443, /readyz on :80, no DNS), each with
 * a data dir of its own (kept across restarts), `BLOB_STORE` on the one bucket, `CACHE_INDEX` on the one
 * index, `PEER_ADDRESS` = its own address:443, one CA (r1 creates it, the others load it) and one
 * `REDIRECT_KEY_FILE`.
 * Each replica has a resolver of its own (dnsmasq on 127.0.0.21…) that sends `registry.test` to that
 * replica: `pull(name, …)` runs skopeo through it, so a pull goes through the replica asked for.
 *
 *   let fleet: Fleet;
 *   beforeAll(async () => { fleet = await startFleet({ index: 'redis' }); }, 240_000);
 *   afterAll(() => fleet?.close());
 *   await fleet.pull('r1', 'oci');
 *   await fleet.waitForCommits('r1', fleet.image('oci').blobs.map((b) => b.digest));
 *   await fleet.waitUntilHit('r2', fleet.image('oci'));
 *   await fleet.clearUpstreamRequests();
 *   await fleet.pull('r2', 'oci');
 *   expect(await fleet.upstreamBlobGets()).toBe(0);
 *
 * Faults: `kill(name)` (SIGKILL), `stop(name)` (SIGTERM, no drain), `start(name)`/`restart(name)` on the
 * same data dir; `index.stop()/start()`, `storage.stop()/start()` on the same data. Clients other than
 * skopeo reach a replica at `address(name)` with SNI and Host `registry.test`, trusting `caFile`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { ImageKey, PushedImage } from '../../bench/images.js';
import { type FlagValue, type LayoverProcess, type LogLine, startLayoverProcess } from '../../bench/layover-process.js';
import { startResolver } from '../../bench/resolver.js';
import type { ExecResult } from '../../bench/sandbox.js';
import { type SandboxS3, startSandboxS3 } from '../../bench/sandbox-s3.js';
import { copyToDir } from '../../bench/skopeo.js';
import { type FleetIndex, type IndexKind, startFleetIndex } from './fleet-index.js';

export type { FleetIndex, IndexKind };

export const S3_ADDRESS = '127.0.0.5';
export const replicaAddress = (i: number): string => `127.0.0.${11 + i}`;
const resolverAddress = (i: number): string => `127.0.0.${21 + i}`;
const resolvConf = (nameserver: string): string => `nameserver ${nameserver}\noptions timeout:2 attempts:1\n`;

export interface FleetOptions {
  index: IndexKind;
  /** How many replicas (r1…rN); default 3, at most 9. */
  replicas?: number;
  /** Test images pushed to the upstream; default oci, docker and multi. */
  images?: readonly ImageKey[];
  /** Flags for every replica, merged over the fleet's (kebab-case, as test/bench/layover-process.ts). */
  flags?: Record<string, FlagValue>;
  /** Environment for every replica, merged over the fleet's. */
  env?: Record<string, string>;
}

export interface PullOptions {
  /** Every platform of an index (skopeo --all). */
  all?: boolean;
  /** Return a failed run instead of throwing. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

/** What waitUntilHit asks for: a pushed image, or any blobs of one repository (e.g. bench/lib/blobs.ts pushes). */
export interface HitProbe {
  repository: string;
  blobs: ReadonlyArray<{ digest: string }>;
}

export interface Fleet {
  readonly bench: Bench;
  readonly index: FleetIndex;
  readonly storage: SandboxS3;
  /** r1…rN. */
  readonly names: readonly string[];
  /** Layover's CA (shared by all replicas) and a directory holding only it (skopeo's cert dir). */
  readonly caFile: string;
  readonly certDir: string;
  address(name: string): string;
  image(key: ImageKey): PushedImage;
  /** The replica's current process; throws when it is not running. */
  replica(name: string): LayoverProcess;
  running(name: string): boolean;
  /** Starts it (again) on its data dir; `extra` adds flags or env for this start only. */
  start(name: string, extra?: { flags?: Record<string, FlagValue>; env?: Record<string, string> }): Promise<LayoverProcess>;
  /** SIGTERM: a clean stop (no drain, as no load balancer is watching). */
  stop(name: string): Promise<void>;
  /** SIGKILL. */
  kill(name: string): Promise<void>;
  restart(name: string): Promise<LayoverProcess>;
  /** skopeo copy of the image (by tag; one platform of an index unless `all`) through this replica into a new dir:; throws with the replica's warnings when it fails. */
  pull(name: string, image: ImageKey | PushedImage, options?: PullOptions): Promise<ExecResult & { dir: string }>;
  /** Upstream blob GETs logged since the last clear (only of `digests` if given); waits for the access log first. */
  upstreamBlobGets(digests?: Iterable<string>): Promise<number>;
  clearUpstreamRequests(): Promise<void>;
  /** Waits until the replica logged `cache fill committed` for every digest (since it started). */
  waitForCommits(name: string, digests: Iterable<string>, timeoutMs?: number): Promise<void>;
  /**
   * Waits until a HEAD of each of the image's blobs through this replica is a hit (the replica heard of
   * another's commit): HEADs of misses go upstream as HEADs, never GETs.
   */
  waitUntilHit(name: string, image: HitProbe, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const count = options.replicas ?? 3;
  if (count < 1 || count > 9) throw new Error(`startFleet: 1 to 9 replicas, not ${count}`);
  const names = Array.from({ length: count }, (_, i) => `r${i + 1}`);
  let storage: SandboxS3 | undefined;
  const bench = await startBench({
    images: options.images ?? ['oci', 'docker', 'multi'],
    layover: false,
    beforeRegistry: async (sandbox, ca) => {
      storage = await startSandboxS3(sandbox, ca, { address: S3_ADDRESS });
    },
  });
  try {
    const index = await startFleetIndex(bench.sandbox, options.index);
    const resolvConfs = new Map<string, string>();
    for (const [i, name] of names.entries()) {
      await startResolver(bench.sandbox, { [INTERCEPTED_HOST]: [replicaAddress(i)] }, resolverAddress(i));
      const file = join(bench.sandbox.dir, `resolv.${name}.conf`);
      writeFileSync(file, resolvConf(resolverAddress(i)));
      resolvConfs.set(name, file);
    }
    // startResolver writes every resolver's resolv.conf to one path: give it back to the upstream's.
    writeFileSync(bench.resolver.resolvConf, resolvConf(bench.resolver.address));
    return await assemble(bench, index, storage!, names, resolvConfs, options);
  } catch (error) {
    await bench.close();
    throw error;
  }
}

async function assemble(bench: Bench, index: FleetIndex, storage: SandboxS3, names: string[], resolvConfs: Map<string, string>, options: FleetOptions): Promise<Fleet> {
  const { sandbox } = bench;
  const caDir = join(sandbox.dir, 'layover-ca');
  // One key signs docker.proxy URLs for the fleet: with keys of their own, replicas refuse each other's.
  const redirectKey = join(sandbox.dir, 'redirect.key');
  writeFileSync(redirectKey, randomBytes(32), { mode: 0o600 });
  const processes = new Map<string, LayoverProcess>();
  const dataDirs = new Map<string, string>();
  let pulls = 0;

  const address = (name: string): string => {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`fleet: no replica ${name} (${names.join(', ')})`);
    return replicaAddress(i);
  };
  const running = (name: string): boolean => {
    const child = processes.get(name)?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  };
  const replica = (name: string): LayoverProcess => {
    if (!running(name)) throw new Error(`fleet: ${name} is not running`);
    return processes.get(name)!;
  };
  const image = (key: ImageKey): PushedImage => {
    const found = bench.images[key];
    if (!found) throw new Error(`fleet: image ${key} was not pushed`);
    return found;
  };

  const start = async (name: string, extra: { flags?: Record<string, FlagValue>; env?: Record<string, string> } = {}): Promise<LayoverProcess> => {
    if (running(name)) throw new Error(`fleet: ${name} is running already`);
    const own = address(name);
    const started = await startLayoverProcess(sandbox, {
      upstreamCa: bench.ca.certFile,
      dataDir: dataDirs.get(name),
      flags: {
        https: `${own}:443`,
        http: `${own}:80`,
        dns: 'off',
        proxy: 'off',
        // One CA for the fleet: a client trusts the service, whichever replica answers.
        'ca-dir': caDir,
        advertise: own,
        'log-level': 'debug',
        ...options.flags,
        ...extra.flags,
      },
      env: {
        ...storage.env,
        BLOB_STORE: storage.blobStore('fleet'),
        CACHE_INDEX: index.url,
        PEER_ADDRESS: `${own}:443`,
        REDIRECT_KEY_FILE: redirectKey,
        ...options.env,
        ...extra.env,
      },
    });
    processes.set(name, started);
    dataDirs.set(name, started.dataDir);
    return started;
  };

  const waitForCommits = async (name: string, digests: Iterable<string>, timeoutMs = 30_000): Promise<void> => {
    const process = replica(name);
    for (const digest of new Set(digests)) await process.waitForLog((line) => line.msg === 'cache fill committed' && line.digest === digest, timeoutMs);
  };

  const headIsHit = async (name: string, repository: string, digest: string): Promise<boolean> => {
    const process = replica(name);
    const isHead = (line: LogLine): boolean => line.msg === 'request' && line.method === 'HEAD' && line.digest === digest;
    const before = process.logs().filter(isHead).length;
    const url = `https://${INTERCEPTED_HOST}/v2/${repository}/blobs/${digest}`;
    const curl = await sandbox.exec('curl', ['-sS', '-I', '-o', '/dev/null', '--max-time', '20', '--cacert', process.caFile, '--resolve', `${INTERCEPTED_HOST}:443:${address(name)}`, url]);
    if (curl.code !== 0) throw new Error(`fleet: HEAD ${url} through ${name}: ${curl.stderr}`);
    // The request line is written when the answer completes: it may trail curl's exit a little.
    for (let tries = 0; tries < 100; tries++) {
      const heads = process.logs().filter(isHead);
      if (heads.length > before) return heads.at(-1)!.cache === 'hit';
      await pause(50);
    }
    throw new Error(`fleet: ${name} logged no request line for HEAD ${url}`);
  };

  const upstreamBlobGets = async (digests?: Iterable<string>): Promise<number> => {
    await bench.registry.sync();
    const only = digests ? new Set(digests) : undefined;
    return bench.registry.requests().filter((r) => r.method === 'GET' && /\/blobs\/sha256:[0-9a-f]{64}$/.test(r.path) && (!only || only.has(r.path.slice(r.path.lastIndexOf('/') + 1)))).length;
  };

  // One after another: the first creates the CA the others load.
  for (const name of names) await start(name);
  const caFile = join(caDir, 'ca.crt');
  const certDir = processes.get(names[0]!)!.certDir;

  return {
    bench,
    index,
    storage,
    names,
    caFile,
    certDir,
    address,
    image,
    replica,
    running,
    start,
    stop: async (name) => processes.get(name)?.stop(),
    kill: async (name) => processes.get(name)?.kill('SIGKILL'),
    async restart(name) {
      await processes.get(name)?.stop();
      return start(name);
    },
    async pull(name, wanted, pullOptions = {}) {
      const pushed = typeof wanted === 'string' ? image(wanted) : wanted;
      const dir = join(sandbox.dir, `pull-${++pulls}-${name}`);
      const result = await copyToDir(sandbox, `docker://${pushed.ref(INTERCEPTED_HOST)}`, dir, {
        certDir,
        resolvConf: resolvConfs.get(name)!,
        ...pullOptions,
        allowFailure: true,
      });
      if (result.code !== 0 && !pullOptions.allowFailure) {
        // What the replica said about it: skopeo only knows the status.
        const problems = (processes.get(name)?.logs() ?? []).filter((line) => line.level >= 40).slice(-10);
        throw new Error(`fleet: skopeo pull of ${pushed.repository} through ${name} failed (${result.code}):\n${result.stderr}\n${name} warned:\n${problems.map((line) => JSON.stringify(line)).join('\n')}`);
      }
      return { ...result, dir };
    },
    upstreamBlobGets,
    async clearUpstreamRequests() {
      await bench.registry.sync();
      bench.registry.clearRequests();
    },
    waitForCommits,
    async waitUntilHit(name, pushed, timeoutMs = 30_000) {
      const deadline = performance.now() + timeoutMs;
      for (const { digest } of pushed.blobs) {
        while (!(await headIsHit(name, pushed.repository, digest))) {
          if (performance.now() > deadline) throw new Error(`fleet: ${digest} is no hit on ${name} within ${timeoutMs} ms`);
          await pause(200);
        }
      }
    },
    close: () => bench.close(),
  };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
