import { describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../../src/client-auth/access-policy.js';
import type { AccessRule } from '../../../src/client-auth/client-auth-config.js';

const alice = { user: 'alice', groups: ['dev'] };
const bob = { user: 'bob', groups: [] };
const pull = (registry: string, repository?: string) => ({ action: 'pull' as const, registry, repository });
const push = (registry: string, repository?: string) => ({ action: 'push' as const, registry, repository });

describe('AccessPolicy', () => {
  it('by default lets every authenticated user pull anything and nobody push', () => {
    const policy = new AccessPolicy(null);
    expect(policy.allows(alice, pull('ghcr.io', 'a/b'))).toBe(true);
    expect(policy.allows(bob, pull('quay.io', undefined))).toBe(true);
    expect(policy.allows(alice, push('ghcr.io', 'a/b'))).toBe(false);
  });

  it('allows only what some rule allows, by user, group, registry and repository glob', () => {
    const rules: AccessRule[] = [
      { groups: ['dev'], registries: ['*.example.com', 'ghcr.io'], repositories: ['team/*', 'shared/**'], actions: ['pull'] },
      { users: ['bob'], registries: ['registry.example.com'], repositories: ['bob/**'], actions: ['pull', 'push'] },
    ];
    const policy = new AccessPolicy(rules);
    expect(policy.allows(alice, pull('ghcr.io', 'team/app'))).toBe(true);
    expect(policy.allows(alice, pull('ghcr.io', 'team/app/sub'))).toBe(false); // * stays in one segment
    expect(policy.allows(alice, pull('ghcr.io', 'shared/a/b/c'))).toBe(true);
    expect(policy.allows(alice, pull('eu.example.com', 'team/app'))).toBe(true);
    expect(policy.allows(alice, pull('example.com', 'team/app'))).toBe(false); // *.domain needs a subdomain
    expect(policy.allows(alice, pull('quay.io', 'team/app'))).toBe(false);
    expect(policy.allows(alice, push('ghcr.io', 'team/app'))).toBe(false);
    expect(policy.allows(bob, push('registry.example.com', 'bob/tool'))).toBe(true);
    expect(policy.allows(bob, pull('registry.example.com', 'team/app'))).toBe(false);
    expect(policy.allows({ user: 'mallory', groups: [] }, pull('ghcr.io', 'team/app'))).toBe(false);
  });

  it('names a port of a host as a registry of its own; a name without a port covers every port', () => {
    const policy = new AccessPolicy([
      { users: ['alice'], registries: ['r.example:5000', '*.corp.example'], actions: ['pull'] },
      { users: ['bob'], registries: ['r.example'], actions: ['pull'] },
    ]);
    expect(policy.allows(alice, pull('r.example:5000', 'a/b'))).toBe(true);
    expect(policy.allows(alice, pull('r.example:5001', 'a/b'))).toBe(false);
    expect(policy.allows(alice, pull('r.example', 'a/b'))).toBe(false);
    expect(policy.allows(alice, pull('eu.corp.example:8443', 'a/b'))).toBe(true);
    expect(policy.allows(bob, pull('r.example:5001', 'a/b'))).toBe(true);
    expect(policy.allows(bob, pull('r.example', 'a/b'))).toBe(true);
    expect(policy.allows(bob, pull('r.example.evil', 'a/b'))).toBe(false);
    // 443 written out is that port only, as any other: not the host's registry at 5050.
    const only443 = new AccessPolicy([{ users: ['alice'], registries: ['git.corp:443'], actions: ['pull'] }]);
    expect(only443.allows(alice, pull('git.corp', 'a/b'))).toBe(true);
    expect(only443.allows(alice, pull('git.corp:443', 'a/b'))).toBe(true);
    expect(only443.allows(alice, pull('git.corp:5050', 'a/b'))).toBe(false);
  });

  it("matches Docker Hub by any of the names clients use for it", () => {
    const policy = new AccessPolicy([{ registries: ['docker.io'], actions: ['pull'] }]);
    for (const name of ['docker.io', 'registry-1.docker.io', 'index.docker.io']) expect(policy.allows(alice, pull(name, 'library/alpine')), name).toBe(true);
    expect(policy.allows(alice, pull('ghcr.io', 'library/alpine'))).toBe(false);
    // A wildcard sees the name the client used, as before.
    const wildcard = new AccessPolicy([{ registries: ['*.docker.io'], actions: ['pull'] }]);
    expect(wildcard.allows(alice, pull('registry-1.docker.io', 'library/alpine'))).toBe(true);
    expect(wildcard.allows(alice, pull('docker.io', 'library/alpine'))).toBe(false);
  });

  it('a rule with repositories never matches a request about no repository (the catalog)', () => {
    const policy = new AccessPolicy([{ repositories: ['**'], actions: ['pull'] }]);
    expect(policy.allows(alice, pull('ghcr.io', 'any/thing'))).toBe(true);
    expect(policy.allows(alice, pull('ghcr.io', undefined))).toBe(false);
  });

  it('treats glob text literally apart from *, ** and ?', () => {
    const policy = new AccessPolicy([{ repositories: ['lib.x/app?'], actions: ['pull'] }]);
    expect(policy.allows(alice, pull('r', 'lib.x/app1'))).toBe(true);
    expect(policy.allows(alice, pull('r', 'libax/app1'))).toBe(false);
    expect(policy.allows(alice, pull('r', 'lib.x/app12'))).toBe(false);
  });
});
