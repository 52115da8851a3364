/**
 * HTTPS_PROXY mode end to end, in the loopback-only sandbox of test/bench: the real `layover serve`
 * (proxy on 127.0.0.1:3128 inside the namespace), the real distribution registry behind it, skopeo
 * and curl as clients. The clients get a resolv.conf whose only resolver does not exist, so a
 * registry name can reach Layover only through the proxy; names are resolved by Layover (through
 * the sandbox's dnsmasq) or not at all. The non-intercepted TLS server is the same registry under its
 * other name, registry-direct.test: no fixture needed.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIRECT_HOST, INTERCEPTED_HOST, REGISTRY_ADDRESS, startBench, type Bench } from '../../bench/bench.js';
import { copyToDir } from '../../bench/skopeo.js';
import { dirContents } from '../proxy/dir-compare.js';

const PROXY = 'http://127.0.0.1:3128';
// Tunnels reach only public addresses unless allowed; the registry's is loopback inside the sandbox.
const LAYOVER_FLAGS = { 'redirect-allow-networks': REGISTRY_ADDRESS };

let bench: Bench;
/** A resolv.conf naming a resolver that is not there: every look-up by the client fails at once. */
let noDns: string;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'large'], layover: { flags: LAYOVER_FLAGS } });
  noDns = join(bench.sandbox.dir, 'resolv.none.conf');
  writeFileSync(noDns, 'nameserver 127.0.0.9\noptions timeout:1 attempts:1\n');
}, 180_000);
afterAll(() => bench?.close());

const viaProxy = (ref: string, dest: string, extra: { allowFailure?: boolean } = {}) =>
  copyToDir(bench.sandbox, `docker://${ref}`, join(bench.sandbox.dir, dest), {
    certDir: bench.layover!.certDir,
    resolvConf: noDns,
    env: { HTTPS_PROXY: PROXY },
    ...extra,
  });

const blobGets = async () => {
  await bench.registry.sync();
  return bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
};

const connectLines = () => bench.layover!.logs().filter((l) => l.msg === 'connect');

async function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return bench.sandbox.exec('curl', ['-sS', '--max-time', '20', ...args], { resolvConf: noDns });
}

describe('skopeo with HTTPS_PROXY and no hijacked DNS', () => {
  it('cannot reach the registry name without the proxy (the premise)', async () => {
    const result = await copyToDir(bench.sandbox, `docker://${bench.images.oci!.ref(INTERCEPTED_HOST)}`, join(bench.sandbox.dir, 'no-proxy'), {
      certDir: bench.layover!.certDir,
      resolvConf: noDns,
      allowFailure: true,
    });
    expect(result.code).not.toBe(0);
  }, 60_000);

  it('pulls through Layover, byte for byte, then from the cache', async () => {
    for (const key of ['oci', 'large'] as const) {
      const image = bench.images[key]!;
      await viaProxy(image.ref(INTERCEPTED_HOST), `first-${key}`);
      await bench.pullDirect(image.ref(DIRECT_HOST), join(bench.sandbox.dir, `direct-${key}`));
      expect(dirContents(join(bench.sandbox.dir, `first-${key}`))).toEqual(dirContents(join(bench.sandbox.dir, `direct-${key}`)));
    }
    const intercepted = connectLines().filter((l) => l.target === `${INTERCEPTED_HOST}:443`);
    expect(intercepted.length).toBeGreaterThan(0);
    expect(intercepted.every((l) => l.decision === 'intercept' && l.sni === INTERCEPTED_HOST)).toBe(true);

    const image = bench.images.large!;
    bench.registry.clearRequests();
    await viaProxy(image.ref(INTERCEPTED_HOST), 'second-large');
    expect(await blobGets()).toEqual([]);
    const hits = bench.layover!.logs().filter((l) => l.msg === 'request' && l.cache === 'hit' && l.digest);
    expect(hits.map((l) => l.digest)).toEqual(expect.arrayContaining(image.blobs.map((b) => b.digest)));
    expect(dirContents(join(bench.sandbox.dir, 'second-large'))).toEqual(dirContents(join(bench.sandbox.dir, 'first-large')));
  }, 180_000);

  it('tunnels a CONNECT to a host Layover does not intercept: the client talks TLS with the real server', async () => {
    bench.registry.clearRequests();
    // Trusting only the test CA: had Layover intercepted, its certificate would fail this.
    const result = await curl(['-x', PROXY, '--cacert', bench.ca.certFile, '-A', 'tunnel-check', `https://${DIRECT_HOST}/v2/`]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('{}');
    expect(await bench.registry.waitForRequest((r) => r.userAgent === 'tunnel-check')).toMatchObject({ method: 'GET', path: '/v2/', status: 200 });
    const line = await bench.layover!.waitForLog((l) => l.msg === 'connect' && l.target === `${DIRECT_HOST}:443`);
    expect(line).toMatchObject({ decision: 'tunnel', status: 200 });
    expect(line.bytesDown).toBeGreaterThan(0);
  }, 60_000);
});

describe('GET /setup/hosts from the proxy port, run in the sandbox', () => {
  it('writes the lines once when run twice, and those lines lead a client to Layover', async () => {
    const work = join(bench.sandbox.dir, 'setup-hosts');
    const bin = join(work, 'bin');
    mkdirSync(bin, { recursive: true });
    const hostsFile = join(work, 'hosts');
    writeFileSync(hostsFile, '127.0.0.1 localhost\n');
    writeFileSync(join(bin, 'update-ca-certificates'), `#!/bin/sh\necho ran >>'${join(work, 'updates')}'\n`);
    chmodSync(join(bin, 'update-ca-certificates'), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOSTS_FILE: hostsFile, CA_DIR: join(work, 'ca'), SKIP_RESTART: '1' };
    for (let round = 0; round < 2; round++) {
      const script = await curl(['-f', 'http://127.0.0.1:3128/setup/hosts']);
      expect(script.code).toBe(0);
      const ran = await bench.sandbox.exec('bash', ['-s'], { input: script.stdout, env });
      expect(ran.code, ran.stderr).toBe(0);
    }
    const hosts = readFileSync(hostsFile, 'utf8');
    expect(hosts.match(new RegExp(`^127\\.0\\.0\\.1 ${INTERCEPTED_HOST.replace('.', '\\.')}$`, 'gm'))).toHaveLength(1);
    expect(hosts.match(/^# BEGIN Layover/gm)).toHaveLength(1);
    // The same certificate; the script writes it with LF line ends.
    expect(readFileSync(join(work, 'ca', 'layover-ca.crt'), 'utf8')).toBe(readFileSync(bench.layover!.caFile, 'utf8').replace(/\r\n/g, '\n'));
    expect(readFileSync(join(work, 'updates'), 'utf8')).toBe('ran\n');

    // DNS-hijack mode by /etc/hosts alone: that file over /etc/hosts, no resolver, no proxy.
    const image = bench.images.oci!;
    const dest = join(bench.sandbox.dir, 'via-hosts-file');
    mkdirSync(dest);
    writeFileSync(join(work, 'auth.json'), '{}');
    writeFileSync(join(work, 'registries.conf'), '');
    const pull = await bench.sandbox.exec(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hostsFile, 'skopeo', '--insecure-policy', 'copy', '--src-cert-dir', bench.layover!.certDir, `docker://${image.ref(INTERCEPTED_HOST)}`, `dir:${dest}`],
      { resolvConf: noDns, env: { REGISTRY_AUTH_FILE: join(work, 'auth.json'), CONTAINERS_REGISTRIES_CONF: join(work, 'registries.conf') } },
    );
    expect(pull.code, pull.stderr).toBe(0);
  }, 60_000);
});

describe('CONNECT_POLICY=deny', () => {
  it('refuses the tunnel and still serves intercepted names', async () => {
    await bench.layover!.stop();
    await bench.startLayover({ flags: { ...LAYOVER_FLAGS, 'connect-policy': 'deny' } });
    const refused = await curl(['-x', PROXY, '--cacert', bench.ca.certFile, `https://${DIRECT_HOST}/v2/`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/403/);
    const line = await bench.layover!.waitForLog((l) => l.msg === 'connect' && l.target === `${DIRECT_HOST}:443`);
    expect(line).toMatchObject({ decision: 'deny', reason: 'policy', status: 403 });
    await viaProxy(bench.images.oci!.ref(INTERCEPTED_HOST), 'after-deny');
  }, 120_000);
});
