import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';

// Every run names its resolvers and addresses: no default may reach a public resolver.
const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '10.9.8.7'];
const dir = mkdtempSync(join(tmpdir(), 'layover-mirror-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('layover containerd-config', () => {
  it('lists configured registries and docker.io, never Layover itself, Docker Hub aliases, wildcards or custom domains', () => {
    const config = join(dir, 'domains.yaml');
    writeFileSync(config, 'customDomains:\n  - {from: docker.example.test, to: quay.io}\n');
    const out = join(dir, 'certs.d');
    const result = runCli(['containerd-config', ...SAFE, '--config', config, '--registries', 'quay.io *.pkg.dev', '--https', '0.0.0.0:8443', '--ca', '/etc/layover/ca.crt', '--dir', out]);
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['_default', 'docker.io', 'quay.io']);
    expect(result.stdout).toBe(['docker.io', 'quay.io', '_default'].map((name) => `${join(out, name, 'hosts.toml')}\n`).join(''));
    const quay = readFileSync(join(out, 'quay.io', 'hosts.toml'), 'utf8');
    expect(quay).toContain('server = "https://quay.io"');
    expect(quay).toContain('[host."https://10.9.8.7:8443"]\n  capabilities = ["pull", "resolve"]\n  ca = "/etc/layover/ca.crt"\n');
    expect(readFileSync(join(out, '_default', 'hosts.toml'), 'utf8')).not.toContain('server =');
  });

  it('takes --server and --ca none (the CA is in the system trust)', () => {
    const result = runCli(['containerd-config', ...SAFE, '--server', 'https://layover.internal', '--ca', 'none']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('[host."https://layover.internal"]');
    expect(result.stdout).not.toContain('ca =');
  });

  it.each(['ftp://x', 'https://a b', 'https://x:99999', 'https://x/path'])('refuses --server %j with exit 2', (server) => {
    const result = runCli(['containerd-config', ...SAFE, '--server', server]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^layover: --server: expected/);
  });
});

describe('layover registries-conf', () => {
  it('prints a mirror by path prefix for each registry', () => {
    const result = runCli(['registries-conf', ...SAFE, '--registries', 'quay.io', '--server', '[fd00::5]:8443']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('[[registry]]\nprefix = "quay.io"\nlocation = "quay.io"\n\n[[registry.mirror]]\nlocation = "[fd00::5]:8443/quay.io"\n');
    expect(result.stdout).toContain('location = "[fd00::5]:8443/docker.io"');
    expect(result.stdout).not.toContain('docker.proxy');
  });
});
