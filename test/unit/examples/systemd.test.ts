import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../../src/config/settings.js';
import { USAGE } from '../../../src/cli/usage.js';
import { configFor, dockerfile, examplePath, hasProgram, readText, ROOT, SETTING_ENV_NAMES } from './example-files.js';

/** Read by Node.js and glibc, not by Layover: as `npm start` sets them. */
const RUNTIME_ENV_NAMES: ReadonlySet<string> = new Set(['NODE_ENV', 'MALLOC_MMAP_THRESHOLD_']);

// examples/systemd/layover.service, parsed here; systemd-analyze verifies it where it is installed.

const UNIT_PATH = examplePath('systemd', 'layover.service');
const PREFIX = '/opt/layover';

/** A unit file as section -> key -> values (a key may repeat), continuation lines joined. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!pair || !current) throw new Error(`not a unit file line: ${line}`);
    current.set(pair[1]!, [...(current.get(pair[1]!) ?? []), pair[2]!]);
  }
  return sections;
}

const unit = parseUnit(readText(UNIT_PATH));
const service = unit.get('Service')!;
const one = (key: string): string | undefined => service.get(key)?.at(-1);
const environment = Object.fromEntries((service.get('Environment') ?? []).flatMap((e) => e.split(/\s+/)).map((pair) => pair.split('=') as [string, string]));
const seconds = (value: string): number => {
  const match = /^(\d+)(ms|s|min)?$/.exec(value);
  if (!match) throw new Error(`not a time span: ${value}`);
  return Number(match[1]) * ({ ms: 0.001, s: 1, min: 60 }[match[2] ?? 's'] ?? 1);
};

describe('examples/systemd/layover.service', () => {
  it('has the sections of an installable service', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
    expect(unit.get('Unit')!.get('After')).toEqual(['network-online.target']);
  });

  it('starts the project-local Node.js 24 and the built CLI at the documented install path', () => {
    const [node, ...words] = one('ExecStart')!.split(/\s+/);
    // Node's own flags come before the script: the same as the image's.
    const nodeFlags = words.filter((word, i) => word.startsWith('--') && words.slice(0, i).every((w) => w.startsWith('--')));
    expect(nodeFlags).toEqual(dockerfile().entrypoint.slice(1, -1));
    const [main, command, ...rest] = words.slice(nodeFlags.length);
    // scripts/node24.sh installs Node.js here; package.json's bin is the CLI.
    const node24 = readText(join(ROOT, 'scripts/node24.sh'));
    const toolchain = /^toolchain="\$root\/(.+)"$/m.exec(node24)![1]!;
    const nodedir = /^nodedir="\$toolchain\/(.+)"$/m.exec(node24)![1]!;
    expect(node).toBe(`${PREFIX}/${toolchain}/${nodedir}/bin/node`);
    const pkg = JSON.parse(readText(join(ROOT, 'package.json'))) as { bin: { layover: string } };
    expect(main).toBe(`${PREFIX}/${pkg.bin.layover}`);
    expect(USAGE).toMatch(new RegExp(`^  ${command} `, 'm'));
    expect(command).toBe('serve');
    expect(rest).toEqual([]);
    expect(readText(examplePath('systemd', 'README.md'))).toContain(one('ExecStart')!);
  });

  it("sets only environment variables Layover reads (and the runtime's: NODE_ENV, glibc's MALLOC_MMAP_THRESHOLD_)", () => {
    for (const name of Object.keys(environment)) expect(RUNTIME_ENV_NAMES.has(name) || SETTING_ENV_NAMES.has(name), name).toBe(true);
    expect(environment.MALLOC_MMAP_THRESHOLD_).toBe('131072');
  });

  it('keeps the data dir in the state directory, the one place the service can write', () => {
    const config = configFor(environment);
    expect(config.dataDir).toBe(`/var/lib/${one('StateDirectory')}`);
    expect(config.caDir.startsWith(`${config.dataDir}/`)).toBe(true);
    expect(one('ProtectSystem')).toBe('strict');
    expect(service.get('ReadWritePaths')).toBeUndefined();
  });

  it('binds Layover\'s ports below 1024 without root: CAP_NET_BIND_SERVICE alone', () => {
    const config = configFor(environment);
    const ports = [config.listen.https, config.listen.http, config.listen.dns, config.listen.proxy].flatMap((l) => (l ? [l.port] : []));
    expect(Math.min(...ports)).toBeLessThan(1024);
    expect(one('DynamicUser') === 'yes' || (one('User') ?? 'root') !== 'root').toBe(true);
    expect(one('AmbientCapabilities')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('NoNewPrivileges')).toBe('yes');
  });

  it('lets the default --advertise read the interfaces (netlink) when LAYOVER_ADVERTISE is not set', () => {
    const families = one('RestrictAddressFamilies')!.split(/\s+/);
    expect(families).toEqual(expect.arrayContaining(['AF_INET', 'AF_INET6']));
    if (environment.LAYOVER_ADVERTISE === undefined) expect(families).toContain('AF_NETLINK');
  });

  it('leaves V8 its executable memory, and Layover its shutdown grace', () => {
    expect(one('MemoryDenyWriteExecute') ?? 'no').toBe('no');
    expect(seconds(one('TimeoutStopSec')!) * 1000).toBeGreaterThan(SETTINGS.shutdownGrace.default!);
  });

  // systemd-analyze comes with systemd, which a container may lack; the unit is parsed above regardless.
  it.skipIf(!hasProgram('systemd-analyze'))('passes systemd-analyze verify without a warning, and its security rating is OK', () => {
    // An alternative root holding the unit, systemd's own units, and a stand-in for the node binary
    // (verify checks that ExecStart is executable).
    const root = mkdtempSync(join(tmpdir(), 'layover-systemd-'));
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    cpSync(UNIT_PATH, join(root, 'etc/systemd/system/layover.service'));
    const units = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((dir) => existsSync(dir));
    if (units) cpSync(units, join(root, units), { recursive: true, verbatimSymlinks: true });
    const node = join(root, one('ExecStart')!.split(/\s+/)[0]!);
    mkdirSync(dirname(node), { recursive: true });
    writeFileSync(node, '#!/bin/sh\n');
    chmodSync(node, 0o755);

    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', `--root=${root}`, 'layover.service'], { encoding: 'utf8' });
    expect(verify.stderr + verify.stdout).toBe('');
    expect(verify.status).toBe(0);

    const security = spawnSync('systemd-analyze', ['security', '--offline=yes', `--root=${root}`, '--no-pager', 'layover.service'], { encoding: 'utf8' });
    if (security.status === 0 || /exposure level/.test(security.stdout)) {
      const level = Number(/Overall exposure level for layover\.service: ([\d.]+)/.exec(security.stdout)?.[1]);
      expect(level).toBeLessThanOrEqual(2.5);
    }
    // systemd-analyze itself must have run.
    expect(execFileSync('systemd-analyze', ['--version'], { encoding: 'utf8' })).toMatch(/^systemd \d+/);
  });
});
