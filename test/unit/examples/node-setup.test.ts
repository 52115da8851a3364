import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostsFileLines } from '../../../src/dns/hosts-file.js';
import { CLI } from '../../helpers/run-cli.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { configFor } from './example-files.js';
import { script, setupContainer as container, setupEnv as podEnv } from './kubernetes-example.js';

// The node setup script of examples/kubernetes/node-setup.yaml, run for real: against a scratch
// directory standing for the node's root, with the DaemonSet's environment, a real Layover serving
// /ca.crt and the real `layover hosts`.

const config = configFor(podEnv);
const hostsBlock = hostsFileLines({ registries: config.registries, advertise: config.advertise }).trimEnd();
const begin = '# BEGIN layover node setup';
const end = '# END layover node setup';
const ORIGINAL_HOSTS = '127.0.0.1 localhost\n::1 localhost ip6-localhost\n';
const FOREIGN_TOML = 'server = "https://quay.io"\n[host."https://mirror.example"]\n  capabilities = ["pull"]\n';

describe('examples/kubernetes node-setup.sh on a scratch node', () => {
  let layover: RunningLayover;
  let node: string;
  let scriptFile: string;
  const certsDir = (): string => join(node, 'etc/containerd/certs.d');
  const hostsFile = (): string => join(node, 'etc/hosts');

  /** The pod's environment, pointed at the scratch node and the test's Layover. */
  const scriptEnv = (env: Record<string, string> = {}): Record<string, string> => ({
    ...podEnv,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    HOST_ROOT: node,
    LAYOVER_CLI: CLI,
    LAYOVER_CA_URL: `http://127.0.0.1:${layover.addresses.http!.port}/ca.crt`,
    ...env,
  });

  /** Runs the script; asynchronously, since Layover answers from this process. */
  function run(mode: string, env: Record<string, string> = {}): Promise<{ status: number | null; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [scriptFile, mode], { env: scriptEnv(env), stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stderr }));
    });
  }

  beforeAll(async () => {
    layover = await startLayover();
    const scratch = mkdtempSync(join(tmpdir(), 'layover-node-'));
    node = join(scratch, 'node');
    mkdirSync(join(node, 'etc/containerd/certs.d/quay.io'), { recursive: true });
    writeFileSync(join(node, 'etc/hosts'), ORIGINAL_HOSTS);
    writeFileSync(join(node, 'etc/containerd/certs.d/quay.io/hosts.toml'), FOREIGN_TOML);
    scriptFile = join(scratch, 'node-setup.sh');
    writeFileSync(scriptFile, script);
  });
  afterAll(async () => {
    await layover?.close();
  });

  it('adds the `layover hosts` lines to /etc/hosts in one block, after what was there', async () => {
    const { status, stderr } = await run('once');
    expect(stderr).not.toMatch(/failed|error/i);
    expect(status).toBe(0);
    expect(readFileSync(hostsFile(), 'utf8')).toBe(`${ORIGINAL_HOSTS}${begin}\n${hostsBlock}\n${end}\n`);
  });

  it('writes a hosts.toml and Layover\'s CA for every name, with the CA at its path on the node', () => {
    const names = config.registries.filter((name) => name !== 'quay.io');
    for (const name of names) {
      const toml = readFileSync(join(certsDir(), name, 'hosts.toml'), 'utf8');
      for (const line of toml.trimEnd().split('\n')) expect(line).toMatch(/^(#.*|\w+ = "[^"]*")$/);
      const server = name === 'docker.io' ? 'https://registry-1.docker.io' : `https://${name}`;
      expect(toml).toContain(`server = "${server}"\n`);
      const ca = /^ca = "(.*)"$/m.exec(toml)![1]!;
      // The node's /etc/containerd/certs.d is the scratch node's etc/containerd/certs.d.
      expect(ca).toBe(`/etc/containerd/certs.d/${name}/layover-ca.crt`);
      expect(readFileSync(join(node, ca), 'utf8').trim()).toBe(layover.app.ca.certPem.trim());
    }
    expect(readdirSync(certsDir()).sort()).toEqual([...config.registries].sort());
  });

  it('leaves a hosts.toml it did not write alone, and says what to add', async () => {
    expect(readFileSync(join(certsDir(), 'quay.io/hosts.toml'), 'utf8')).toBe(FOREIGN_TOML);
    expect(existsSync(join(certsDir(), 'quay.io/layover-ca.crt'))).toBe(false);
    const { stderr } = await run('once');
    expect(stderr).toContain('ca = "/etc/containerd/certs.d/quay.io/layover-ca.crt"');
  });

  it('changes nothing when run again', async () => {
    const before = statSync(hostsFile()).mtimeMs;
    const { status, stderr } = await run('once');
    expect(status).toBe(0);
    expect(stderr).not.toContain('wrote');
    expect(statSync(hostsFile()).mtimeMs).toBe(before);
  });

  it('makes the DaemonSet\'s readiness probe pass', () => {
    const [program, ...args] = container.readinessProbe!.exec!.command;
    const probe = spawnSync(program!, args.map((a) => a.replace(/^\/host\//, `${node}/`)));
    expect(probe.status).toBe(0);
  });

  it('follows a change of REGISTRIES: a name no longer intercepted goes', async () => {
    const registries = podEnv.REGISTRIES!.split(' ').filter((r) => r !== 'registry.k8s.io').join(' ');
    expect((await run('once', { REGISTRIES: registries })).status).toBe(0);
    expect(existsSync(join(certsDir(), 'registry.k8s.io'))).toBe(false);
    expect(readFileSync(hostsFile(), 'utf8')).not.toContain(' registry.k8s.io\n');
    expect((await run('once')).status).toBe(0);
    expect(existsSync(join(certsDir(), 'registry.k8s.io/hosts.toml'))).toBe(true);
  });

  it('fails without touching the node when Layover cannot be reached', async () => {
    const before = readFileSync(hostsFile(), 'utf8');
    const { status, stderr } = await run('once', { LAYOVER_CA_URL: 'http://127.0.0.1:9/ca.crt', REGISTRIES: 'example.org' });
    expect(status).not.toBe(0);
    expect(stderr).toContain('127.0.0.1:9');
    expect(readFileSync(hostsFile(), 'utf8')).toBe(before);
    expect(existsSync(join(certsDir(), 'example.org'))).toBe(false);
  });

  it('takes every change out again with `remove` (the preStop hook)', async () => {
    expect((await run('remove')).status).toBe(0);
    expect(readFileSync(hostsFile(), 'utf8')).toBe(ORIGINAL_HOSTS);
    expect(readdirSync(certsDir())).toEqual(['quay.io']);
    expect(readFileSync(join(certsDir(), 'quay.io/hosts.toml'), 'utf8')).toBe(FOREIGN_TOML);
  });

  it('loops as the container\'s command and stops at once on SIGTERM', async () => {
    const child = spawn('bash', [scriptFile], { env: scriptEnv(), stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 200 && !readFileSync(hostsFile(), 'utf8').includes(end); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(hostsFile(), 'utf8')).toContain(end);
    await new Promise((r) => setTimeout(r, 200));
    const sent = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - sent).toBeLessThan(2_000);
    expect((await run('remove')).status).toBe(0);
  });
});
