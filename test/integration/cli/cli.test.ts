import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runCli } from '../../helpers/run-cli.js';

// Every run names its resolvers and addresses: no default may reach a public resolver.
const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '10.9.8.7'];

describe('layover CLI: invalid configuration exits 2 and names the setting', () => {
  it.each([
    [['hosts', ...SAFE], { CACHE_MAX_SIZE: 'lots' }, 'layover: CACHE_MAX_SIZE: expected a size such as 32g, got "lots"'],
    [['hosts', ...SAFE, '--https', 'nowhere'], {}, 'layover: --https: expected ADDR:PORT such as 0.0.0.0:443, got "nowhere"'],
    [['serve', ...SAFE, '--dns', '1.2.3.4:70000'], {}, 'layover: --dns: expected ADDR:PORT such as 0.0.0.0:443, or off, got "1.2.3.4:70000"'],
    [['serve', ...SAFE], { AUTH_REGISTRIES: 'quay.io:only-a-secret' }, 'layover: AUTH_REGISTRIES: entry 1 is not hostname:username:password'],
  ])('%j %j', (args, env, message) => {
    const result = runCli(args, env);
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toBe(message);
    expect(result.stdout).toBe('');
  });

  it('refuses unknown flags and commands with exit 2', () => {
    expect(runCli(['--no-such-flag']).status).toBe(2);
    const unknown = runCli(['frobnicate', ...SAFE]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('never echoes a credential', () => {
    const result = runCli(['config', ...SAFE], { AUTH_REGISTRIES: 'quay.io:bob:hunter2' });
    expect(result.status).toBe(0);
    expect(result.stdout).not.toContain('hunter2');
    expect(result.stdout).toMatch(/^# Not printed: authRegistries: given by AUTH_REGISTRIES/m);
  });

  it('layover config prints a file that --config loads back to the same configuration', () => {
    const env = { AUTH_REGISTRIES: 'quay.io:bob:hunter2', CACHE_MAX_SIZE: '10g' };
    const first = runCli(['config', ...SAFE, '--proxy', 'off', '--shutdown-grace', '90s'], env);
    expect(first.status, first.stderr).toBe(0);
    const file = join(mkdtempSync(join(tmpdir(), 'layover-config-')), 'layover.yaml');
    writeFileSync(file, first.stdout);
    // Only the credential comes from the environment again: everything else from the printed file.
    const again = runCli(['config', '--config', file], { AUTH_REGISTRIES: env.AUTH_REGISTRIES });
    expect(again.status, again.stderr).toBe(0);
    const body = (text: string): string => text.replace(/^# Read from .*\n/m, '');
    expect(body(again.stdout)).toBe(body(first.stdout));
    expect(parse(again.stdout)).toMatchObject({ cacheMaxSize: '10g', proxy: 'off', shutdownGrace: '90s', upstreamDns: '127.0.0.1:9' });
  });

  it('layover cache alone lists the cache commands (exit 0); an unknown one is refused with them (exit 2)', () => {
    const alone = runCli(['cache', ...SAFE]);
    expect(alone.status).toBe(0);
    expect(alone.stdout).toMatch(/^Usage: layover cache/);
    for (const sub of ['stats', 'ls', 'verify', 'prune']) expect(alone.stdout).toContain(`cache ${sub}`);
    expect(runCli(['cache', '--help']).stdout).toBe(alone.stdout);
    const unknown = runCli(['cache', 'frobnicate', ...SAFE]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command "cache frobnicate"');
    expect(unknown.stderr).toContain('cache prune');
  });
});

describe('layover CLI: generators and the CA', () => {
  it('layover hosts prints /etc/hosts lines for the intercepted names', () => {
    const result = runCli(['hosts', ...SAFE, '--registries', 'quay.io *.pkg.dev']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('10.9.8.7 quay.io\n');
    expect(result.stdout).toContain('10.9.8.7 registry-1.docker.io\n');
    expect(result.stdout).toContain('10.9.8.7 docker.proxy\n');
    expect(result.stdout).toMatch(/^#.*\*\.pkg\.dev/m);
  });

  it('layover coredns prints a hosts block; --k8s a ConfigMap', () => {
    const stanza = runCli(['coredns', ...SAFE]);
    expect(stanza.status).toBe(0);
    expect(stanza.stdout).toMatch(/^hosts \{\n\s+10\.9\.8\.7 .*quay\.io/m);
    expect(stanza.stdout).toMatch(/fallthrough/);
    const k8s = runCli(['coredns', '--k8s', ...SAFE]);
    expect(parse(k8s.stdout).data.Corefile).toContain('10.9.8.7 ');
  });

  it('layover ca creates the CA once and prints the same certificate afterwards', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'layover-cli-'));
    const first = runCli(['ca', ...SAFE, '--data-dir', dataDir]);
    expect(first.status).toBe(0);
    const cert = new X509Certificate(first.stdout);
    expect(cert.ca).toBe(true);
    const second = runCli(['ca', ...SAFE], { LAYOVER_DATA_DIR: dataDir });
    expect(second.stdout).toBe(first.stdout);
    const keyFile = join(dataDir, 'ca', 'ca.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  it('prints usage and version', () => {
    expect(runCli(['--help']).stdout).toMatch(/^Usage: layover/);
    expect(runCli(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
