/**
 * The /setup/* scripts, generated and run for real with bash against scratch files: every path the
 * scripts write is overridden (HOSTS_FILE, SYSTEMD_DIR, CA_DIR, CONTAINERS_CONF_DIR) and
 * `update-ca-certificates` and `systemctl` are stand-ins on PATH that only record their arguments.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostsFileLines } from '../../../src/dns/hosts-file.js';
import { SETUP_KINDS, setupScript, type SetupInputs } from '../../../src/setup/setup-scripts.js';

const CA = `-----BEGIN CERTIFICATE-----
MIIBizCCATCgAwIBAgIUULeOZtIHftot/7UAMS+yEhxVZlMwCgYIKoZIzj0EAwIw
ETEPMA0GA1UEAwwGYS50ZXN0MB4XDTI2MTEyMzEzNDQ0OVoXDTI2MTEyNDEzNDQ0
-----END CERTIFICATE-----
`;
const REGISTRIES = ['quay.io', 'registry-1.docker.io', 'docker.io', 'docker.proxy', '*.example.org'];
const inputs = (overrides: Partial<SetupInputs> = {}): SetupInputs => ({
  proxy: '10.0.0.5:3128',
  addresses: ['10.0.0.5'],
  registries: REGISTRIES,
  caCertPem: CA,
  ...overrides,
});
const ORIGINAL_HOSTS = '127.0.0.1 localhost\n::1 localhost ip6-localhost\n';

let dir: string;
let calls: string;
let env: Record<string, string>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'layover-setup-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  calls = join(dir, 'calls.log');
  for (const command of ['update-ca-certificates', 'systemctl']) {
    // `systemctl is-active` says every unit runs, so restarts of running units show in the log.
    writeFileSync(join(bin, command), `#!/bin/sh\necho "${command} $*" >>'${calls}'\n`);
    chmodSync(join(bin, command), 0o755);
  }
  env = {
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOSTS_FILE: join(dir, 'hosts'),
    CA_DIR: join(dir, 'ca-certificates'),
    SYSTEMD_DIR: join(dir, 'systemd'),
    CONTAINERS_CONF_DIR: join(dir, 'containers.conf.d'),
  };
  writeFileSync(env.HOSTS_FILE!, ORIGINAL_HOSTS);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a script the way `curl … | sudo bash` does: from standard input. */
function run(script: string, extra: Record<string, string> = {}): { status: number | null; stderr: string; calls: string[] } {
  rmSync(calls, { force: true });
  const result = spawnSync('bash', ['-s'], { input: script, env: { ...env, ...extra }, encoding: 'utf8', timeout: 20_000 });
  const recorded = existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean).map((line) => line.trimEnd()) : [];
  return { status: result.status, stderr: result.stderr, calls: recorded };
}
const read = (path: string): string => readFileSync(path, 'utf8');

describe('every setup script', () => {
  it.each(SETUP_KINDS)('%s passes bash -n and shellcheck', (kind) => {
    const script = setupScript(kind, inputs());
    expect(script.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(script).toContain('\nset -euo pipefail\n');
    const syntax = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
    expect(syntax.stderr).toBe('');
    expect(syntax.status).toBe(0);
    const lint = spawnSync('shellcheck', ['--shell=bash', '--severity=style', '-'], { input: script, encoding: 'utf8' });
    expect(lint.stdout).toBe('');
    expect(lint.status).toBe(0);
  });

  it.each(SETUP_KINDS)('%s refuses to run as another user than root', (kind) => {
    const nobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', '-s'], {
      input: setupScript(kind, inputs()),
      env,
      encoding: 'utf8',
    });
    expect(nobody.status).not.toBe(0);
    expect(nobody.stderr).toMatch(/run this as root/);
  });

  it('refuses a NO_PROXY_LIST that is more than names and addresses', () => {
    const result = run(setupScript('systemd', inputs()), { NO_PROXY_LIST: 'localhost" "HTTPS_PROXY=http://evil:1' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/NO_PROXY_LIST/);
    expect(existsSync(join(env.SYSTEMD_DIR!, 'docker.service.d'))).toBe(false);
  });
});

describe('/setup/hosts', () => {
  const block = (addresses: string[]): string =>
    `# BEGIN Layover (/setup/hosts)\n${hostsFileLines({ registries: REGISTRIES, advertise: addresses })}# END Layover (/setup/hosts)\n`;

  it('writes the lines once, and the CA once, even when run twice', () => {
    const script = setupScript('hosts', inputs());
    const first = run(script);
    expect(first.stderr).not.toMatch(/error|failed/i);
    expect(first.status).toBe(0);
    expect(read(env.HOSTS_FILE!)).toBe(ORIGINAL_HOSTS + block(['10.0.0.5']));
    expect(read(join(env.CA_DIR!, 'layover-ca.crt'))).toBe(CA);
    expect(first.calls).toEqual([
      'update-ca-certificates',
      'systemctl is-active --quiet containerd.service',
      'systemctl restart containerd.service',
      'systemctl is-active --quiet docker.service',
      'systemctl restart docker.service',
    ]);

    const second = run(script);
    expect(second.status).toBe(0);
    expect(read(env.HOSTS_FILE!)).toBe(ORIGINAL_HOSTS + block(['10.0.0.5']));
    expect(read(env.HOSTS_FILE!).match(/^10\.0\.0\.5 quay\.io$/gm)).toHaveLength(1);
    expect(second.calls).toEqual([]);
    expect(second.stderr).toMatch(/nothing to change/);
  });

  it('replaces its own block when Layover answers differently, keeping the lines around it', () => {
    writeFileSync(env.HOSTS_FILE!, `${ORIGINAL_HOSTS}${block(['10.0.0.5'])}192.0.2.1 mine.example\n`);
    const result = run(setupScript('hosts', inputs({ addresses: ['10.0.0.6'] })));
    expect(result.status).toBe(0);
    expect(read(env.HOSTS_FILE!)).toBe(`${ORIGINAL_HOSTS}192.0.2.1 mine.example\n${block(['10.0.0.6'])}`);
    expect(read(env.HOSTS_FILE!)).not.toContain('10.0.0.5');
  });

  it('leaves a hosts file whose block has lost its end marker alone', () => {
    const broken = `${ORIGINAL_HOSTS}# BEGIN Layover (/setup/hosts)\n10.0.0.5 quay.io\n192.0.2.1 mine.example\n`;
    writeFileSync(env.HOSTS_FILE!, broken);
    const result = run(setupScript('hosts', inputs()));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/mend it by hand/);
    expect(read(env.HOSTS_FILE!)).toBe(broken);
  });

  it('writes /etc/hosts in place (a bind mount cannot be renamed over)', () => {
    const before = statSync(env.HOSTS_FILE!).ino;
    expect(run(setupScript('hosts', inputs())).status).toBe(0);
    expect(statSync(env.HOSTS_FILE!).ino).toBe(before);
  });
});

describe('/setup/systemd and /setup/containerd', () => {
  it.each([
    ['systemd', 'docker.service'],
    ['containerd', 'containerd.service'],
  ] as const)('%s writes the drop-in for %s once and restarts it only after a change', (kind, unit) => {
    const script = setupScript(kind, inputs());
    const first = run(script);
    expect(first.stderr).not.toMatch(/error|failed/i);
    expect(first.status).toBe(0);
    const dropIn = join(env.SYSTEMD_DIR!, `${unit}.d`, 'http-proxy.conf');
    expect(read(dropIn)).toBe(
      `# Written by Layover (/setup/${kind}).\n[Service]\nEnvironment="HTTPS_PROXY=http://10.0.0.5:3128" "NO_PROXY=localhost,127.0.0.1,::1"\n`,
    );
    expect(first.calls).toEqual(['update-ca-certificates', 'systemctl daemon-reload', `systemctl restart ${unit}`]);

    const second = run(script);
    expect(second.status).toBe(0);
    expect(second.calls).toEqual([]);

    // A new proxy address: the drop-in changes, the CA does not.
    const moved = run(setupScript(kind, inputs({ proxy: 'layover.lan:3128' })), { NO_PROXY_LIST: 'localhost,.corp.example' });
    expect(moved.calls).toEqual(['systemctl daemon-reload', `systemctl restart ${unit}`]);
    expect(read(dropIn)).toContain('Environment="HTTPS_PROXY=http://layover.lan:3128" "NO_PROXY=localhost,.corp.example"');
  });

  it('keeps a drop-in it did not write as http-proxy.conf.before-layover, once', () => {
    const unitDir = join(env.SYSTEMD_DIR!, 'docker.service.d');
    mkdirSync(unitDir, { recursive: true });
    const foreign = '[Service]\nEnvironment="HTTPS_PROXY=http://corporate:8080"\n';
    writeFileSync(join(unitDir, 'http-proxy.conf'), foreign);
    expect(run(setupScript('systemd', inputs())).status).toBe(0);
    expect(read(join(unitDir, 'http-proxy.conf.before-layover'))).toBe(foreign);
    expect(read(join(unitDir, 'http-proxy.conf'))).toContain('http://10.0.0.5:3128');
    expect(run(setupScript('systemd', inputs({ proxy: '10.0.0.6:3128' }))).status).toBe(0);
    expect(read(join(unitDir, 'http-proxy.conf.before-layover'))).toBe(foreign);
  });

  it('leaves restarts to the operator with SKIP_RESTART=1', () => {
    const result = run(setupScript('systemd', inputs()), { SKIP_RESTART: '1' });
    expect(result.status).toBe(0);
    expect(result.calls).toEqual(['update-ca-certificates']);
    expect(result.stderr).toMatch(/SKIP_RESTART=1: restart docker.service yourself/);
  });

  it('uses update-ca-trust where update-ca-certificates is missing (RHEL, Fedora)', () => {
    const bin = join(dir, 'rhel-bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'update-ca-trust'), `#!/bin/sh\necho "update-ca-trust $*" >>'${calls}'\n`);
    chmodSync(join(bin, 'update-ca-trust'), 0o755);
    for (const tool of ['bash', 'cat', 'cmp', 'chmod', 'mv', 'mkdir', 'rm', 'grep', 'cp', 'id', 'systemctl', 'mktemp', 'awk', 'dirname']) {
      const path = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8', env: { PATH: env.PATH! } }).stdout.trim();
      if (path && !existsSync(join(bin, tool))) spawnSync('ln', ['-s', path, join(bin, tool)]);
    }
    const result = run(setupScript('containerd', inputs()), { PATH: bin });
    expect(result.stderr).not.toMatch(/error|failed|not found/i);
    expect(result.calls[0]).toBe('update-ca-trust extract');
  });
});

describe('/setup/podman', () => {
  it('writes a containers.conf drop-in with [engine] env once', () => {
    const script = setupScript('podman', inputs());
    expect(run(script).status).toBe(0);
    expect(read(join(env.CONTAINERS_CONF_DIR!, '50-layover-proxy.conf'))).toBe(
      '# Written by Layover (/setup/podman).\n[engine]\nenv = ["HTTPS_PROXY=http://10.0.0.5:3128", "NO_PROXY=localhost,127.0.0.1,::1"]\n',
    );
    const second = run(script);
    expect(second.status).toBe(0);
    expect(second.calls).toEqual([]);
  });
});
