import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { startContainerd } from '../../bench/containerd.js';
import { podmanIn } from '../../bench/podman.js';
import { runCli } from '../../helpers/run-cli.js';
import { curl } from '../proxy/curl.js';

// Mirror mode: no DNS hijack, no proxy variables. The clients' resolv.conf names a resolver that
// does not exist, so registry.test cannot be resolved at all: a pull succeeds only through Layover
// as a mirror, at 127.0.0.1, with the files `layover containerd-config` / `registries-conf` print.
let bench: Bench;
let noDns: string;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested', 'multi'] });
  noDns = join(bench.sandbox.dir, 'resolv.nothing.conf');
  writeFileSync(noDns, 'nameserver 127.0.0.9\noptions timeout:1 attempts:1\n');
}, 180_000);
afterAll(() => bench?.close());

/** The flags the bench's Layover runs with, for the generators (same data dir, so the same CA path). */
const layoverFlags = (): string[] => ['--data-dir', bench.layover!.dataDir, '--advertise', '127.0.0.1', '--https', '127.0.0.1:443', '--upstream-dns', '127.0.0.1:9', '--registries', INTERCEPTED_HOST];

const blobGets = async () => {
  await bench.registry.sync();
  return bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
};

describe('containerd with the hosts.toml files of `layover containerd-config`', () => {
  it('prints one file per registry and _default, with Layover as the mirror and its CA', () => {
    const printed = runCli(['containerd-config', ...layoverFlags()]);
    expect(printed.status, printed.stderr).toBe(0);
    expect(printed.stdout).toContain('# ===== /etc/containerd/certs.d/registry.test/hosts.toml =====\n');
    expect(printed.stdout).toContain('# ===== /etc/containerd/certs.d/docker.io/hosts.toml =====\n');
    expect(printed.stdout).toContain('# ===== /etc/containerd/certs.d/_default/hosts.toml =====\n');
    expect(printed.stdout).toContain('server = "https://registry-1.docker.io"');
    expect(printed.stdout).toContain('[host."https://127.0.0.1"]');
    expect(printed.stdout).toContain(`ca = "${bench.layover!.caFile}"`);
    expect(printed.stdout).not.toMatch(/certs\.d\/(docker\.proxy|auth\.docker\.io|registry-1\.docker\.io)\//);
  });

  it('pulls through Layover with ?ns=, and a second containerd pulling the same image is served from the cache', async () => {
    const hostsDir = join(bench.sandbox.dir, 'certs.d');
    const written = runCli(['containerd-config', ...layoverFlags(), '--dir', hostsDir]);
    expect(written.status, written.stderr).toBe(0);
    expect(readFileSync(join(hostsDir, INTERCEPTED_HOST, 'hosts.toml'), 'utf8')).toContain(`server = "https://${INTERCEPTED_HOST}"`);

    const image = bench.images.oci!;
    const pull = async (): Promise<void> => {
      // A fresh containerd each time: its own content store has none of the blobs.
      const containerd = await startContainerd(bench.sandbox);
      await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', '--platform', 'linux/amd64', image.ref(INTERCEPTED_HOST)], { resolvConf: noDns });
      const listed = await containerd.ctr(['images', 'ls', '-q']);
      expect(listed.stdout.split('\n')).toContain(image.ref(INTERCEPTED_HOST));
      await containerd.stop();
    };
    bench.registry.clearRequests();
    await pull();
    const first = await blobGets();
    expect(first.map((r) => r.path)).toEqual(expect.arrayContaining(image.blobs.map((b) => expect.stringContaining(b.digest))));
    const viaNs = bench.layover!.logs().filter((l) => l.msg === 'request' && l.via === 'ns');
    expect(viaNs.length).toBeGreaterThan(0);
    expect(viaNs.every((l) => l.registry === INTERCEPTED_HOST || l.registry === undefined)).toBe(true);
    expect(viaNs.some((l) => String(l.url).includes('ns=registry.test'))).toBe(true);

    bench.registry.clearRequests();
    await pull();
    expect(await blobGets()).toEqual([]);
    const hits = bench.layover!.logs().filter((l) => l.msg === 'request' && l.via === 'ns' && l.cache === 'hit' && l.digest);
    expect(hits.map((l) => l.digest)).toEqual(expect.arrayContaining(image.blobs.map((b) => b.digest)));
  }, 180_000);

  it('refuses, as a mirror, registries it does not proxy and docker.proxy itself', async () => {
    for (const ns of ['registry-direct.test', 'docker.proxy', 'evil.example']) {
      const res = await curl(bench, `https://127.0.0.1/v2/bench/oci/manifests/v1?ns=${ns}`);
      expect(res.status, ns).toBe(404);
      expect(JSON.parse(res.body.toString()).errors[0].code).toBe('NAME_UNKNOWN');
    }
  });
});

describe('podman with the registries.conf of `layover registries-conf`', () => {
  it('pulls through Layover by path prefix, with no DNS for the registry', async () => {
    const printed = runCli(['registries-conf', ...layoverFlags()]);
    expect(printed.status, printed.stderr).toBe(0);
    expect(printed.stdout).toContain(`[[registry]]\nprefix = "${INTERCEPTED_HOST}"\nlocation = "${INTERCEPTED_HOST}"\n\n[[registry.mirror]]\nlocation = "127.0.0.1/${INTERCEPTED_HOST}"\n`);
    const conf = join(bench.sandbox.dir, 'registries.conf');
    writeFileSync(conf, printed.stdout);

    const image = bench.images.nested!;
    const podman = podmanIn(bench.sandbox);
    await podman.pull(image.ref(INTERCEPTED_HOST), { registriesConf: conf, certDir: bench.layover!.certDir, resolvConf: noDns });
    const listed = await podman.run(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}'], { registriesConf: conf });
    expect(listed.stdout).toContain(`${INTERCEPTED_HOST}/${image.repository}:${image.tag} ${image.digest}`);
    const viaPath = bench.layover!.logs().filter((l) => l.msg === 'request' && l.via === 'path');
    expect(viaPath.some((l) => String(l.url).startsWith(`/v2/${INTERCEPTED_HOST}/${image.repository}/manifests/`))).toBe(true);
    expect(viaPath.filter((l) => l.digest).every((l) => l.registry === INTERCEPTED_HOST && l.repo === image.repository)).toBe(true);
  }, 180_000);

  it('pulls a multi-platform index through the mirror, then from the cache', async () => {
    const conf = join(bench.sandbox.dir, 'registries.conf');
    const image = bench.images.multi!;
    const podman = podmanIn(bench.sandbox);
    await podman.pull(image.ref(INTERCEPTED_HOST), { registriesConf: conf, certDir: bench.layover!.certDir, resolvConf: noDns });
    bench.registry.clearRequests();
    await podmanIn(bench.sandbox).pull(image.ref(INTERCEPTED_HOST), { registriesConf: conf, certDir: bench.layover!.certDir, resolvConf: noDns });
    expect(await blobGets()).toEqual([]);
  }, 180_000);
});
