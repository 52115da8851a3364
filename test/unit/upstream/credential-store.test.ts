import { describe, expect, it } from 'vitest';
import type { RegistryCredential } from '../../../src/config/credentials.js';
import { Secret } from '../../../src/config/secret.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { CredentialHelperError, type HelperRunner } from '../../../src/upstream/auth/credential-helper.js';
import { credentialName, CredentialStore } from '../../../src/upstream/auth/credential-store.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { registryHosts } from '../../../src/upstream/auth/registry-hosts.js';

const cred = (registry: string, username: string, extra: Partial<RegistryCredential> = {}): RegistryCredential => ({ registry, username, password: new Secret(`${username}-pw`), ...extra });
const repo = (name: string) => name as RepositoryName;

describe('CredentialStore.select', () => {
  const store = new CredentialStore([
    cred('registry.example', 'default'),
    cred('registry.example', 'team', { prefix: 'team' }),
    cred('registry.example', 'team-app', { prefix: 'team/app' }),
    cred('auth.docker.io', 'hub'),
    cred('gitlab.com', 'lab'),
    cred('other.example:5000', 'ported'),
  ]);

  it('takes the longest repository prefix, on whole path components', () => {
    expect(store.select('registry.example', repo('team/app/web'), null)?.username).toBe('team-app');
    expect(store.select('registry.example', repo('team/other'), null)?.username).toBe('team');
    expect(store.select('registry.example', repo('team'), null)?.username).toBe('team');
    expect(store.select('registry.example', repo('teamster/x'), null)?.username).toBe('default');
    expect(store.select('registry.example', null, null)?.username).toBe('default');
    expect(store.select('REGISTRY.example', repo('x'), null)?.username).toBe('default');
  });

  it('falls back to an entry keyed by the token realm host (GitLab\'s gitlab.com); auth.docker.io is one of Docker Hub\'s names', () => {
    expect(store.select('registry-1.docker.io', repo('library/alpine'), 'auth.docker.io')?.username).toBe('hub');
    expect(store.select('registry-1.docker.io', repo('library/alpine'), null)?.username).toBe('hub');
    expect(store.select('registry.gitlab.com', repo('group/app'), 'gitlab.com')?.username).toBe('lab');
    expect(store.select('registry.gitlab.com', repo('group/app'), null)).toBeNull();
    expect(store.select('unknown.example', repo('a'), null)).toBeNull();
    expect(store.select('other.example:5000', repo('a'), null)?.username).toBe('ported');
    expect(store.select('other.example', repo('a'), null)).toBeNull();
  });

  it('as the app wires it: Docker Hub from an entry keyed auth.docker.io, GitLab from gitlab.com, nothing for a name under a wildcard', () => {
    const machine = { advertise: () => ['127.0.0.1'], upstreamDns: () => [{ host: '127.0.0.1', port: 9 }], ownNetworks: () => ['127.0.0.0/8'] };
    // Docker Hub's names (auth.docker.io among them) are intercepted whatever REGISTRIES says.
    const config = loadConfig({ env: { REGISTRIES: 'registry.gitlab.com *.corp.example' }, machine });
    const app = new CredentialStore([cred('auth.docker.io', 'hub'), cred('gitlab.com', 'lab'), cred('auth.example', 'corp')], registryHosts(config));
    expect(app.select('registry-1.docker.io', repo('library/alpine'), 'auth.docker.io')?.username).toBe('hub');
    expect(app.select('registry.gitlab.com', repo('group/app'), 'gitlab.com')?.username).toBe('lab');
    expect(app.select('evil.corp.example', repo('a'), 'gitlab.com')).toBeNull();
  });

  it('counts a custom domain\'s upstream as named, though REGISTRIES reaches it only through a wildcard', () => {
    const hosts = registryHosts({ registries: ['*.corp.example'], customDomains: [{ domain: 'docker.example.com', pathPrefix: '', registry: 'mirror.corp.example:5000', upstreamPrefix: '' }] as never });
    expect(hosts.wildcardOnly('mirror.corp.example')).toBe(false);
    expect(hosts.wildcardOnly('evil.corp.example')).toBe(true);
    expect(hosts.isRegistry('mirror.corp.example') && hosts.isRegistry('evil.corp.example')).toBe(true);
  });

  it('treats Docker Hub names as one registry', () => {
    const hub = new CredentialStore([cred('docker.io', 'me')]);
    for (const name of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) expect(hub.select(name, repo('library/x'), null)?.username).toBe('me');
  });

  it('covers a registry only through entries for it or its domain', () => {
    expect(store.covers('registry-1.docker.io')).toBe(true);
    expect(store.covers('registry.example')).toBe(true);
    expect(store.covers('quay.io')).toBe(false);
    expect(new CredentialStore([]).covers('registry.example')).toBe(false);
  });

  it('names credentials without their secret', () => {
    expect(credentialName(cred('r.example', 'bob', { prefix: 'team' }))).toBe('bob@r.example/team');
    expect(credentialName(cred('r.example', '', { helper: { name: 'ecr-login', maxAgeMs: 1 } }))).toBe('helper ecr-login for r.example');
  });
});

describe('CredentialStore helper credentials', () => {
  const setup = () => {
    let now = 0;
    const calls: string[] = [];
    let fail = false;
    const runHelper: HelperRunner = async (helper, registry) => {
      calls.push(`${helper} ${registry}`);
      if (fail) throw new CredentialHelperError('docker-credential-x get failed (exit code 1)');
      return { username: 'AWS', password: new Secret(`secret-${calls.length}`) };
    };
    const entry = cred('ecr.example', '', { helper: { name: 'x', maxAgeMs: 60_000 } });
    const store = new CredentialStore([entry], { runHelper, now: () => now });
    return { store, entry, calls, advance: (ms: number) => (now += ms), failNext: (v: boolean) => (fail = v) };
  };

  it('runs the helper once, again after its max age, and again after a rejection (once for many)', async () => {
    const { store, entry, calls, advance } = setup();
    const [a, b] = await Promise.all([store.resolve(entry), store.resolve(entry)]);
    expect(a).toBe(b);
    expect(a.password.reveal()).toBe('secret-1');
    expect(calls).toEqual(['x ecr.example']);
    advance(59_000);
    expect((await store.resolve(entry)).password.reveal()).toBe('secret-1');
    advance(2_000);
    const fresh = await store.resolve(entry);
    expect(fresh.password.reveal()).toBe('secret-2');
    expect(store.invalidate(entry, fresh)).toBe(true);
    expect(store.invalidate(entry, fresh)).toBe(true);
    const third = await store.resolve(entry);
    expect(third.password.reveal()).toBe('secret-3');
    expect(store.invalidate(entry, fresh)).toBe(true); // a late rejection of an old answer keeps the new one
    expect(await store.resolve(entry)).toBe(third);
    expect(calls).toHaveLength(3);
  });

  it('does not keep a failed helper run, and static credentials are never "refreshed"', async () => {
    const { store, entry, calls, failNext } = setup();
    failNext(true);
    await expect(store.resolve(entry)).rejects.toThrow(CredentialHelperError);
    failNext(false);
    expect((await store.resolve(entry)).password.reveal()).toBe('secret-2');
    expect(calls).toHaveLength(2);
    const plain = cred('r.example', 'u');
    const statics = new CredentialStore([plain]);
    const resolved = await statics.resolve(plain);
    expect(resolved.password.reveal()).toBe('u-pw');
    expect(statics.invalidate(plain, resolved)).toBe(false);
  });
});
