/**
 * Self-tests of the end-to-end bench: the sandbox is sealed, the registry serves the pushed images
 * and logs what it served, Layover runs inside and answers DNS and /ca.crt, auth mode works, and
 * nothing is left behind. No proxy route (/v2/ through Layover) is used here.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from './bench.js';
import { DOCKER_MANIFEST, LARGE_LAYER_BYTES, OCI_INDEX, OCI_MANIFEST } from './images.js';
import { createSandbox, listSandboxes, sweepOrphans } from './sandbox.js';
import { inspectRaw, skopeo } from './skopeo.js';

const sha256 = (bytes: Buffer | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('bench with an anonymous upstream', () => {
  let bench: Bench;
  beforeAll(async () => {
    bench = await startBench();
  }, 180_000);
  afterAll(async () => {
    const name = bench?.sandbox.name;
    await bench?.close();
    if (name) expect(listSandboxes()).not.toContain(name);
  });

  test('the sandbox has no route beyond loopback', async () => {
    const { sandbox } = bench;
    expect((await sandbox.exec('ip', ['route', 'show'])).stdout.trim()).toBe('');
    for (const family of ['-4', '-6']) {
      const routes = (await sandbox.exec('ip', [family, 'route', 'show', 'table', 'all'])).stdout.trim().split('\n').filter(Boolean);
      for (const route of routes) expect(route).toMatch(/ dev lo /);
    }
    const links = (await sandbox.exec('ip', ['-o', 'link', 'show'])).stdout.trim().split('\n');
    expect(links.map((l) => l.split(': ')[1])).toEqual(['lo']);
    for (const url of ['http://192.0.2.1/', 'http://[2001:db8::1]/']) {
      const curl = await sandbox.exec('curl', ['-sS', '--max-time', '20', url]);
      // 7 = could not connect (ENETUNREACH, no route); 28 would be a timeout, i.e. a route somewhere.
      expect(curl.code, curl.stderr).toBe(7);
    }
  });

  test('programs in the sandbox resolve through Layover and see only localhost in hosts', async () => {
    const { sandbox } = bench;
    expect((await sandbox.exec('cat', ['/etc/resolv.conf'])).stdout).toMatch(/^nameserver 127\.0\.0\.1$/m);
    expect((await sandbox.exec('cat', ['/etc/hosts'])).stdout).not.toMatch(/registry/);
    const viaUpstream = await sandbox.exec('cat', ['/etc/resolv.conf'], { resolvConf: bench.resolver.resolvConf });
    expect(viaUpstream.stdout).toMatch(/^nameserver 127\.0\.0\.3$/m);
  });

  test('the images were pushed with the expected shapes', () => {
    const { oci, multi, docker, nested, large } = bench.images;
    expect(oci?.mediaType).toBe(OCI_MANIFEST);
    expect(multi?.mediaType).toBe(OCI_INDEX);
    expect(multi?.manifests.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64']);
    expect(docker?.mediaType).toBe(DOCKER_MANIFEST);
    expect(docker?.manifests[0]?.layers[0]?.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    expect(nested?.repository).toBe('a/b/c');
    expect(large?.manifests[0]?.layers[0]?.size).toBeGreaterThan(LARGE_LAYER_BYTES);
    // The shared base layer: the same digest in three images.
    const base = oci?.manifests[0]?.layers[0]?.digest;
    expect(nested?.manifests[0]?.layers[0]?.digest).toBe(base);
    expect(docker?.manifests[0]?.layers[0]?.digest).toBe(base);
    for (const image of Object.values(bench.images)) expect(image.digest).toBe(sha256(image.raw));
  });

  test('the registry serves the images directly, byte for byte', async () => {
    for (const image of Object.values(bench.images)) {
      const dest = join(bench.sandbox.dir, 'direct', image.key);
      await bench.pullDirect(image.ref('registry-direct.test'), dest, { all: image.mediaType === OCI_INDEX });
      for (const blob of image.blobs) {
        const bytes = readFileSync(join(dest, blob.digest.slice(7)));
        expect(bytes.length).toBe(blob.size);
        expect(sha256(bytes)).toBe(blob.digest);
      }
      expect(readFileSync(join(dest, 'manifest.json'), 'utf8')).toBe(image.raw);
    }
  });

  test('the registry log records each GET with its path and status', async () => {
    const image = bench.images.nested!;
    const layer = image.manifests[0]!.layers[1]!;
    bench.registry.clearRequests();
    await bench.pullDirect(image.ref('registry-direct.test'), join(bench.sandbox.dir, 'logged'));
    const get = await bench.registry.waitForRequest((r) => r.method === 'GET' && r.path === `/v2/a/b/c/blobs/${layer.digest}`);
    expect(get.status).toBe(200);
    expect(get.bytes).toBe(layer.size);
    await bench.registry.sync();
    const requests = bench.registry.requests();
    expect(requests.some((r) => r.path === '/v2/a/b/c/manifests/v1')).toBe(true);
    expect(requests.every((r) => !r.path.includes('layover-bench-sync'))).toBe(true);
    // Nothing of another repository was fetched.
    expect(requests.filter((r) => r.path.startsWith('/v2/bench/'))).toEqual([]);
  });

  test('Layover runs in the sandbox: it intercepts registry.test and forwards other names', async () => {
    const { sandbox } = bench;
    const dig = async (name: string): Promise<string> =>
      (await sandbox.exec('dig', ['@127.0.0.1', '+short', '+tries=1', '+time=2', name, 'A'])).stdout.trim();
    expect(await dig('registry.test')).toBe('127.0.0.1');
    expect(await dig('registry-direct.test')).toBe('127.0.0.2');
    expect(bench.layover?.logs().some((l) => l.msg === 'layover is listening')).toBe(true);
  });

  test('curl reaches Layover\'s HTTPS listener as docker.proxy and gets its CA; registry.test is proxied', async () => {
    const layover = bench.layover!;
    const curl = await bench.sandbox.exec('curl', ['-sS', '--fail', '--cacert', layover.caFile, 'https://docker.proxy/ca.crt']);
    expect(curl.code, curl.stderr).toBe(0);
    expect(curl.stdout).toBe(readFileSync(layover.caFile, 'utf8'));
    // The registry's own name reaches the registry through Layover, verified with Layover's CA.
    const ping = await bench.sandbox.exec('curl', ['-sS', '--fail', '--cacert', layover.caFile, 'https://registry.test/v2/']);
    expect(ping.code, ping.stderr).toBe(0);
    expect(ping.stdout).toBe('{}');
    // Request lines are parsed and kept by default (tests read them).
    await layover.waitForLog((l) => l.msg === 'request' && l.url === '/ca.crt' && l.host === 'docker.proxy');
  });

  test('a new Layover process on the same data dir keeps the CA after kill -9', async () => {
    const first = bench.layover!;
    const ca = readFileSync(first.caFile, 'utf8');
    await first.kill('SIGKILL');
    expect(first.child.signalCode).toBe('SIGKILL');
    // Its request lines drained, as the benchmarks run it: read and dropped unparsed, every other line kept.
    const second = await bench.startLayover({ dataDir: first.dataDir, requestLines: 'drained' });
    expect(readFileSync(second.caFile, 'utf8')).toBe(ca);
    const curl = await bench.sandbox.exec('curl', ['-sS', '--fail', '--cacert', second.caFile, 'https://docker.proxy/ca.crt']);
    expect(curl.code, curl.stderr).toBe(0);
    // Every line it wrote is read once its stdout closes; its last one comes after the request's.
    const closed = once(second.child.stdout!, 'close');
    await second.kill('SIGTERM');
    await closed;
    expect(second.logs().at(-1)?.msg).toBe('layover stopped');
    expect(second.logs().some((l) => l.msg === 'request')).toBe(false);
    expect(second.logs().some((l) => l.msg === 'layover is listening')).toBe(true);
  });

  test('the registry stops and starts again on the same storage', async () => {
    const image = bench.images.oci!;
    const access = { certDir: bench.ca.trustDir, resolvConf: bench.resolver.resolvConf };
    await bench.registry.stop();
    expect(bench.registry.running).toBe(false);
    const down = await skopeo(bench.sandbox, ['inspect', '--raw', '--retry-times', '0', '--cert-dir', bench.ca.trustDir, `docker://${image.ref('registry-direct.test')}`], {
      ...access,
      allowFailure: true,
    });
    expect(down.code).not.toBe(0);
    expect(down.stderr).toMatch(/connection refused/);
    await bench.registry.start();
    expect(await inspectRaw(bench.sandbox, `docker://${image.ref('registry-direct.test')}`, access)).toBe(image.raw);
  });
});

describe('bench with htpasswd auth on the upstream', () => {
  let bench: Bench;
  beforeAll(async () => {
    bench = await startBench({ auth: { htpasswd: { alice: 'wonder land' } }, images: ['oci'], layover: false });
  }, 120_000);
  afterAll(() => bench?.close());

  test('anonymous access is rejected and the user is accepted', async () => {
    const { sandbox, ca, resolver } = bench;
    const url = 'https://registry-direct.test/v2/';
    const curl = (extra: string[]) =>
      sandbox.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca.certFile, ...extra, url], { resolvConf: resolver.resolvConf });
    expect((await curl([])).stdout).toBe('401');
    expect((await curl(['-u', 'alice:wrong'])).stdout).toBe('401');
    expect((await curl(['-u', 'alice:wonder land'])).stdout).toBe('200');

    const ref = `docker://${bench.images.oci!.ref('registry-direct.test')}`;
    const anonymous = await skopeo(sandbox, ['inspect', '--raw', '--cert-dir', ca.trustDir, ref], { resolvConf: resolver.resolvConf, allowFailure: true });
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/unauthorized|authentication required/i);
    expect(await inspectRaw(sandbox, ref, { certDir: ca.trustDir, creds: bench.registry.credentials, resolvConf: resolver.resolvConf })).toBe(bench.images.oci!.raw);
  });
});

describe('sandbox clean-up', () => {
  test('destroy() kills what runs inside and removes the namespace, /etc/netns and the temp dir', async () => {
    const sandbox = await createSandbox();
    const sleeper = sandbox.spawn('sleep', ['600']);
    // A grandchild that destroy() did not spawn itself.
    await sandbox.exec('sh', ['-c', 'sleep 600 >/dev/null 2>&1 &']);
    const pids = execFileSync('ip', ['netns', 'pids', sandbox.name], { encoding: 'utf8' }).trim().split('\n');
    expect(pids.length).toBe(2);
    await sandbox.destroy();
    expect(sleeper.exitCode !== null || sleeper.signalCode !== null).toBe(true);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')).toBe(false);
    expect(listSandboxes()).not.toContain(sandbox.name);
    expect(existsSync(join('/etc/netns', sandbox.name))).toBe(false);
    expect(existsSync(sandbox.dir)).toBe(false);
    await sandbox.destroy();
  });

  test('sandboxes left by a dead process are swept', () => {
    // PIDs never exceed 2^22, so this creator is certainly gone.
    const orphan = 'layover-9999999-0';
    spawnSync('ip', ['netns', 'add', orphan]);
    expect(listSandboxes()).toContain(orphan);
    sweepOrphans();
    expect(listSandboxes()).not.toContain(orphan);
    expect(existsSync(join('/etc/netns', orphan))).toBe(false);
  });
});
