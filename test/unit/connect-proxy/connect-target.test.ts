import { describe, expect, it } from 'vitest';
import { hostMatches, sniMatches } from '../../../src/connect-proxy/connect-authority.js';
import { decideConnect, type ConnectRules } from '../../../src/connect-proxy/connect-decision.js';
import { formatTarget, parseConnectTarget, type ConnectTarget } from '../../../src/connect-proxy/connect-target.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { RegistryPorts } from '../../../src/proxy/upstream-target.js';

describe('parseConnectTarget', () => {
  it.each([
    ['registry.example:443', { kind: 'name', host: 'registry.example', port: 443 }],
    ['Registry.Example.:5000', { kind: 'name', host: 'registry.example', port: 5000 }],
    ['192.0.2.7:443', { kind: 'ip', host: '192.0.2.7', port: 443 }],
    ['[2001:DB8::1]:443', { kind: 'ip', host: '2001:db8::1', port: 443 }],
    ['[::ffff:127.0.0.1]:443', { kind: 'ip', host: '::ffff:127.0.0.1', port: 443 }],
  ])('reads %s', (authority, expected) => {
    expect(parseConnectTarget(authority)).toEqual(expected);
  });

  it.each([
    undefined,
    '',
    'registry.example',
    ':443',
    'registry.example:',
    'registry.example:0',
    'registry.example:65536',
    'registry.example:443/path',
    'http://registry.example:443',
    'user@registry.example:443',
    'a..b:443',
    '-a.example:443',
    '1.2.3:443',
    '999.1.1.1:443',
    '2001:db8::1:443',
    '[2001:db8::zz]:443',
    '[fe80::1%eth0]:443',
    '[192.0.2.7]:443',
    'registry example:443',
    `${'a.'.repeat(130)}a:443`,
  ])('refuses %j', (authority) => {
    expect(parseConnectTarget(authority)).toBeNull();
  });

  it('formats IPv6 targets with brackets', () => {
    expect(formatTarget(parseConnectTarget('[2001:db8::1]:443')!)).toBe('[2001:db8::1]:443');
    expect(formatTarget(parseConnectTarget('quay.io:443')!)).toBe('quay.io:443');
  });
});

describe('decideConnect', () => {
  const registries = ['quay.io', '*.example.org', '*.example.org:5000', 'gitlab.example:5050'];
  const rules = (policy: 'tunnel' | 'deny'): ConnectRules => ({
    intercepted: new HostnameSet(registries.map((r) => r.split(':')[0]!)),
    servedPorts: new RegistryPorts(registries),
    ports: new Set([443, 5000, 5050]),
    policy,
  });
  const target = (authority: string): ConnectTarget => parseConnectTarget(authority)!;

  it('intercepts intercepted names on 443 and on registry ports', () => {
    for (const policy of ['tunnel', 'deny'] as const) {
      expect(decideConnect(target('quay.io:443'), rules(policy))).toEqual({ decision: 'intercept' });
      expect(decideConnect(target('a.example.org:5000'), rules(policy))).toEqual({ decision: 'intercept' });
    }
  });

  it('tunnels other hosts on those ports only, or denies them all', () => {
    expect(decideConnect(target('github.com:443'), rules('tunnel'))).toEqual({ decision: 'tunnel' });
    expect(decideConnect(target('192.0.2.1:5000'), rules('tunnel'))).toEqual({ decision: 'tunnel' });
    expect(decideConnect(target('github.com:22'), rules('tunnel'))).toEqual({ decision: 'deny', reason: 'port' });
    expect(decideConnect(target('quay.io:8443'), rules('tunnel'))).toEqual({ decision: 'deny', reason: 'port' });
    expect(decideConnect(target('github.com:443'), rules('deny'))).toEqual({ decision: 'deny', reason: 'policy' });
    // The suffix itself is not below the wildcard.
    expect(decideConnect(target('example.org:443'), rules('deny'))).toEqual({ decision: 'deny', reason: 'policy' });
  });

  it('intercepts a name only at the ports it is served at: elsewhere it is another server of that host', () => {
    expect(decideConnect(target('gitlab.example:5050'), rules('tunnel'))).toEqual({ decision: 'intercept' });
    // GitLab's token realm on 443 beside its registry on 5050: intercepted and refused before.
    expect(decideConnect(target('gitlab.example:443'), rules('tunnel'))).toEqual({ decision: 'tunnel' });
    expect(decideConnect(target('quay.io:5000'), rules('tunnel'))).toEqual({ decision: 'tunnel' });
    expect(decideConnect(target('gitlab.example:443'), rules('deny'))).toEqual({ decision: 'deny', reason: 'policy' });
  });
});

describe('the authority of an intercepted connection', () => {
  const quay = parseConnectTarget('quay.io:443')!;
  const five = parseConnectTarget('registry.example:5000')!;

  it('accepts the same host, with 443 as the default port', () => {
    expect(hostMatches('quay.io', quay)).toBe(true);
    expect(hostMatches('QUAY.IO:443', quay)).toBe(true);
    expect(hostMatches('quay.io.', quay)).toBe(true);
    expect(hostMatches('registry.example:5000', five)).toBe(true);
  });

  it('refuses another host or port, or none', () => {
    expect(hostMatches('ghcr.io', quay)).toBe(false);
    expect(hostMatches('quay.io:8443', quay)).toBe(false);
    expect(hostMatches('registry.example', five)).toBe(false);
    expect(hostMatches(undefined, quay)).toBe(false);
    expect(hostMatches('quay.io:443:443', quay)).toBe(false);
  });

  it('accepts SNI for the same name, or none at all', () => {
    expect(sniMatches('Quay.io', quay)).toBe(true);
    expect(sniMatches(undefined, quay)).toBe(true);
    expect(sniMatches('ghcr.io', quay)).toBe(false);
  });
});
