import { describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../../src/client-auth/access-policy.js';
import { bearerChallenge, TOKEN_REALM } from '../../../src/client-auth/client-challenge.js';
import { tokenAudience } from '../../../src/client-auth/token-service/token-audience.js';
import { grantAccess, parseScopes } from '../../../src/client-auth/token-service/token-scopes.js';
import type { CustomDomain } from '../../../src/config/custom-domains.js';
import { isClientTokenRequest, isRefusal, type RequestTarget, type TokenSite } from '../../../src/proxy/request-routing.js';
import { routeRequest } from '../../../src/proxy/request-target.js';
import { CustomDomainRoutes } from '../../../src/registry/custom-domain-routes.js';
import { HostnameSet } from '../../../src/registry/hostname.js';

// The realm and service of CLIENT_AUTH_CHALLENGE=bearer per way of naming the registry, and the
// token service's side of it: which services it issues for where, and what a token is then for.
const customDomains: CustomDomain[] = [{ domain: 'docker.example.test', pathPrefix: 'team/app', registry: 'gcr.io', upstreamPrefix: 'p/team/app', certFile: null, keyFile: null }];
const tables = {
  intercepted: new HostnameSet(['registry.test', 'quay.io', 'docker.io', 'registry-1.docker.io', 'docker.proxy', 'docker.example.test']),
  domains: new CustomDomainRoutes(customDomains),
};
const target = (host: string, url: string): RequestTarget => {
  const routing = routeRequest(host, url, tables);
  if (isRefusal(routing) || isClientTokenRequest(routing)) throw new Error(`not a registry request: ${JSON.stringify(routing)}`);
  return routing;
};
const site = (host: string, url: string): TokenSite => {
  const routing = routeRequest(host, url, tables);
  if (!isClientTokenRequest(routing)) throw new Error(`not a token request: ${JSON.stringify(routing)}`);
  return routing.tokenSite;
};
const challenge = (host: string, url: string): string => {
  const t = target(host, url);
  return bearerChallenge(t.clientToken, t.clientRepository ? { repository: t.clientRepository, actions: ['pull'] } : null);
};

describe('the Bearer challenge per way of naming the registry', () => {
  it("a registry's own name (DNS hijack, HTTPS_PROXY): docker.proxy's token service, the registry as service", () => {
    expect(target('quay.io', '/v2/a/b/manifests/v1').clientToken).toEqual({ realm: TOKEN_REALM, service: 'quay.io' });
    expect(challenge('quay.io', '/v2/a/b/manifests/v1')).toBe('Bearer realm="https://docker.proxy/token",service="quay.io",scope="repository:a/b:pull"');
    // A registry at another port is a registry of its own: its tokens are for it alone.
    expect(challenge('registry.test:5000', '/v2/')).toBe('Bearer realm="https://docker.proxy/token",service="registry.test:5000"');
  });

  it('a custom domain: the token service on the domain itself, the domain as service, the client names in the scope', () => {
    expect(challenge('docker.example.test', '/v2/team/app/x/manifests/v1')).toBe('Bearer realm="https://docker.example.test/token",service="docker.example.test",scope="repository:team/app/x:pull"');
    expect(challenge('Docker.Example.Test:8443', '/v2/')).toBe('Bearer realm="https://docker.example.test:8443/token",service="docker.example.test"');
  });

  it("containerd's ns: the mirror name the client used as realm host and service, the ns in the realm", () => {
    expect(challenge('127.0.0.1', '/v2/bench/oci/manifests/v1?ns=registry.test')).toBe('Bearer realm="https://127.0.0.1/token?ns=registry.test",service="127.0.0.1",scope="repository:bench/oci:pull"');
    expect(target('layover.internal:8443', '/v2/?ns=docker.io').clientToken).toEqual({ realm: 'https://layover.internal:8443/token?ns=docker.io', service: 'layover.internal:8443' });
  });

  it("a podman mirror path: the mirror name as realm host and service, the scope in the client's names", () => {
    expect(challenge('127.0.0.1', '/v2/')).toBe('Bearer realm="https://127.0.0.1/token",service="127.0.0.1"');
    expect(challenge('10.0.0.5', '/v2/registry.test/bench/oci/manifests/v1')).toBe('Bearer realm="https://10.0.0.5/token",service="10.0.0.5",scope="repository:registry.test/bench/oci:pull"');
    expect(challenge('[::1]:8443', '/v2/')).toBe('Bearer realm="https://[::1]:8443/token",service="[::1]:8443"');
    expect(challenge('docker.proxy', '/v2/')).toBe('Bearer realm="https://docker.proxy/token",service="docker.proxy"');
    // The policy still judges the registry and repository the client named.
    expect(target('10.0.0.5', '/v2/registry.test/bench/oci/manifests/v1')).toMatchObject({ registry: 'registry.test', repository: 'bench/oci' });
  });
});

describe('the token service: which services it issues for, where', () => {
  const audience = (s: TokenSite, service: string) => tokenAudience(s, service, tables)?.audience ?? null;

  it('each service its challenges name, and the token is for that service', () => {
    expect(audience(site('docker.proxy', '/token'), 'quay.io')).toBe('quay.io');
    expect(audience(site('docker.proxy', '/token'), 'docker.proxy')).toBe('docker.proxy');
    expect(audience(site('docker.example.test', '/token'), 'docker.example.test')).toBe('docker.example.test');
    expect(audience(site('127.0.0.1', '/token'), '127.0.0.1')).toBe('127.0.0.1');
    expect(audience(site('127.0.0.1', '/token?ns=registry.test'), '127.0.0.1')).toBe('127.0.0.1');
    expect(audience(site('[::1]:8443', '/token'), '[::1]:8443')).toBe('[::1]:8443');
  });

  it.each([
    ['a registry at a mirror name', '127.0.0.1', 'registry.test'],
    ['another mirror name', '127.0.0.1', '10.0.0.5'],
    ['a registry at a custom domain', 'docker.example.test', 'registry.test'],
    ['a mirror name at a custom domain', 'docker.example.test', '127.0.0.1'],
    ['a custom domain at docker.proxy', 'docker.proxy', 'docker.example.test'],
    ['a registry Layover does not proxy', 'docker.proxy', 'evil.example'],
    ['nothing', 'docker.proxy', ''],
    ['no name', 'docker.proxy', 'not a name'],
  ])('no other: %s', (_why, host, service) => {
    expect(tokenAudience(site(host, '/token'), service, tables)).toBeNull();
  });

  it('judges the scopes as the requests they stand for will be judged', () => {
    const policy = new AccessPolicy([
      { users: ['alice'], registries: ['registry.test'], repositories: ['bench/**'], actions: ['pull'] },
      { users: ['alice'], registries: ['docker.example.test'], repositories: ['team/app/**'], actions: ['pull'] },
    ]);
    const alice = { user: 'alice', groups: [] };
    const grant = (s: TokenSite, service: string, scopes: string[]) => grantAccess(policy, alice, tokenAudience(s, service, tables)!, parseScopes(scopes), false).map((a) => a.name);
    expect(grant(site('127.0.0.1', '/token'), '127.0.0.1', ['repository:registry.test/bench/oci:pull', 'repository:quay.io/bench/oci:pull', 'repository:bench/oci:pull'])).toEqual(['registry.test/bench/oci']);
    expect(grant(site('127.0.0.1', '/token?ns=registry.test'), '127.0.0.1', ['repository:bench/oci:pull', 'repository:other:pull'])).toEqual(['bench/oci']);
    expect(grant(site('docker.example.test', '/token'), 'docker.example.test', ['repository:team/app/x:pull', 'repository:bench/oci:pull'])).toEqual(['team/app/x']);
    expect(grant(site('docker.proxy', '/token'), 'registry.test', ['repository:bench/oci:pull', 'repository:team/app/x:pull'])).toEqual(['bench/oci']);
  });
});
