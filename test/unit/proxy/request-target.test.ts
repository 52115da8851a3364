import { describe, expect, it } from 'vitest';
import type { CustomDomain } from '../../../src/config/custom-domains.js';
import { isClientTokenRequest, isRefusal, type RequestTarget, type Routing, type TokenSite } from '../../../src/proxy/request-routing.js';
import { routeRequest } from '../../../src/proxy/request-target.js';
import { CustomDomainRoutes } from '../../../src/registry/custom-domain-routes.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { RegistryPorts } from '../../../src/proxy/upstream-target.js';

const domain = (from: string, to: string): CustomDomain => {
  const [d = '', ...path] = from.split('/');
  const [registry = '', ...prefix] = to.split('/');
  return { domain: d, pathPrefix: path.join('/'), registry, upstreamPrefix: prefix.join('/'), certFile: null, keyFile: null };
};
const customDomains = [
  domain('docker.example.test/team/app', 'gcr.io/my-project/team/app'),
  domain('docker.example.test/hub', 'docker.io/library'),
  domain('plain.example.test', 'registry.test:5000'),
];
const tables = {
  intercepted: new HostnameSet(['registry.test', 'quay.io', '*.pkg.dev', 'docker.io', 'index.docker.io', 'registry-1.docker.io', 'docker.proxy', ...customDomains.map((d) => d.domain)]),
  domains: new CustomDomainRoutes(customDomains),
};
const route = (host: string | undefined, url: string): Routing => routeRequest(host, url, tables);
const target = (host: string | undefined, url: string): RequestTarget => {
  const routing = route(host, url);
  if (isRefusal(routing)) throw new Error(`refused: ${routing.refusal.message}`);
  if (isClientTokenRequest(routing)) throw new Error(`a token request: ${JSON.stringify(routing)}`);
  return routing;
};
const tokenSite = (host: string | undefined, url: string): TokenSite => {
  const routing = route(host, url);
  if (!isClientTokenRequest(routing)) throw new Error(`not a token request: ${JSON.stringify(routing)}`);
  return routing.tokenSite;
};
const refusal = (host: string | undefined, url: string) => {
  const routing = route(host, url);
  if (!isRefusal(routing)) throw new Error(`not refused: ${JSON.stringify(routing)}`);
  return { code: routing.refusal.code, status: routing.refusal.status, message: routing.refusal.message };
};
const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('routeRequest: Host names the registry', () => {
  it('goes upstream as it came, with no rewriting', () => {
    const t = target('quay.io', '/v2/a/b/manifests/v1?ns=docker.io');
    expect(t).toMatchObject({ mode: 'host', registry: 'quay.io', repository: 'a/b', upstream: { registry: 'quay.io', origin: 'https://quay.io' }, token: false });
    expect(t.upstream?.rewrite).toBeUndefined();
    expect(target('docker.io', '/v2/library/alpine/blobs/' + DIGEST).upstream?.origin).toBe('https://registry-1.docker.io');
    expect(target('registry.test', '/_layover/token').token).toBe(true);
  });

  it('keeps a malformed path for after client authentication', () => {
    const t = target('quay.io', '/v2/a/../b/manifests/v1');
    expect(t.route).toBeNull();
    expect(t.routeError?.code).toBe('NAME_INVALID');
  });
});

describe("routeRequest: containerd's ?ns= on Layover's own name", () => {
  it.each(['127.0.0.1', '10.1.2.3:8443', 'docker.proxy', 'layover.internal', '[::1]'])('routes by ns on %s', (host) => {
    const t = target(host, '/v2/bench/oci/manifests/v1?ns=registry.test');
    expect(t).toMatchObject({ mode: 'ns', registry: 'registry.test', repository: 'bench/oci', upstream: { registry: 'registry.test', origin: 'https://registry.test' } });
    expect(t.upstream?.rewrite).toMatchObject({ path: '/v2/bench/oci/manifests/v1', query: '', clientQuery: 'ns=registry.test', alwaysManaged: false, followRedirects: true });
    expect(t.upstream?.rewrite?.tokenRealm).toBe(`https://${host}/_layover/token?ns=registry.test`);
  });

  it('names docker.proxy in the realm of a request without a Host (HTTP/1.0 sends an empty one), never the empty name', () => {
    for (const host of ['', undefined]) {
      expect(target(host, '/v2/bench/oci/manifests/v1?ns=registry.test').upstream?.rewrite?.tokenRealm).toBe('https://docker.proxy/_layover/token?ns=registry.test');
    }
  });

  it("maps Docker Hub and ported names, and keeps the rest of the query byte for byte", () => {
    const hub = target('10.0.0.1', '/v2/library/alpine/tags/list?n=10&ns=docker.io&last=a%2Bb');
    expect(hub.upstream).toMatchObject({ registry: 'docker.io', origin: 'https://registry-1.docker.io', rewrite: { query: 'n=10&last=a%2Bb' } });
    expect(target('10.0.0.1', '/v2/x/manifests/v1?ns=registry.test:5000').upstream?.origin).toBe('https://registry.test:5000');
    expect(target('10.0.0.1', '/v2/x/manifests/v1?ns=eu.pkg.dev').upstream?.origin).toBe('https://eu.pkg.dev');
    expect(target('10.0.0.1', '/_layover/token?ns=docker.io&scope=repository:library/alpine:pull').token).toBe(true);
    expect(target('10.0.0.1', '/v2/?ns=docker.io').route).toEqual({ kind: 'ping' });
  });

  it.each([
    ['ns not intercepted', '/v2/a/manifests/v1?ns=evil.example'],
    ['ns=docker.proxy', '/v2/a/manifests/v1?ns=docker.proxy'],
    ['ns a custom domain', '/v2/team/app/x/manifests/v1?ns=docker.example.test'],
    ['ns with a path', '/v2/a/manifests/v1?ns=registry.test/../evil.example'],
    ['ns with a bad port', '/v2/a/manifests/v1?ns=registry.test:99999'],
    ['ns twice', '/v2/a/manifests/v1?ns=registry.test&ns=quay.io'],
    ['ns empty', '/v2/a/manifests/v1?ns='],
    ['ns an address', '/v2/a/manifests/v1?ns=127.0.0.1'],
  ])('is no open proxy: %s', (_why, url) => {
    expect(refusal('127.0.0.1', url)).toMatchObject({ code: 'NAME_UNKNOWN', status: 404 });
  });

  it('refuses a malformed path at once (no registry to authenticate for)', () => {
    expect(refusal('127.0.0.1', '/v2/a/%2e%2e/b/manifests/v1?ns=registry.test').code).toBe('NAME_INVALID');
  });
});

describe('routeRequest: a podman mirror path prefix', () => {
  it('strips the registry from the path and the names', () => {
    const t = target('127.0.0.1', `/v2/docker.io/library/alpine/blobs/${DIGEST}`);
    expect(t).toMatchObject({ mode: 'path', registry: 'docker.io', repository: 'library/alpine', route: { kind: 'blob', name: 'library/alpine' } });
    expect(t.upstream).toMatchObject({ registry: 'docker.io', origin: 'https://registry-1.docker.io' });
    expect(t.upstream?.rewrite).toMatchObject({ path: `/v2/library/alpine/blobs/${DIGEST}`, alwaysManaged: true, followRedirects: true, tokenRealm: 'https://127.0.0.1/_layover/token/docker.io' });
    expect(t.upstream?.rewrite?.names.toClient('library/alpine')).toBe('docker.io/library/alpine');
    const tags = target('layover:8443', '/v2/registry.test/bench/oci/tags/list?n=5');
    expect(tags.upstream?.rewrite).toMatchObject({ path: '/v2/bench/oci/tags/list', query: 'n=5' });
  });

  it('answers the bare ping itself, with or without a prefix', () => {
    expect(target('127.0.0.1', '/v2/')).toMatchObject({ upstream: null, route: { kind: 'ping' } });
    expect(target('127.0.0.1', '/v2')).toMatchObject({ upstream: null });
  });

  it('has a token endpoint per registry', () => {
    const t = target('127.0.0.1', '/_layover/token/registry.test?scope=repository:registry.test/bench/oci:pull');
    expect(t).toMatchObject({ token: true, registry: 'registry.test', upstream: { origin: 'https://registry.test' } });
    expect(refusal('127.0.0.1', '/_layover/token/evil.example').code).toBe('NAME_UNKNOWN');
    expect(refusal('127.0.0.1', '/_layover/token').code).toBe('NAME_UNKNOWN');
  });

  it.each([
    ['no registry in the name', '/v2/library/alpine/manifests/latest'],
    ['a registry not intercepted', '/v2/evil.example/x/manifests/v1'],
    ['docker.proxy', '/v2/docker.proxy/x/manifests/v1'],
    ['a custom domain', '/v2/docker.example.test/team/app/x/manifests/v1'],
    ['a registry but no repository', '/v2/registry.test/manifests/v1'],
    ['the catalog', '/v2/_catalog'],
    ['not the API', '/etc/passwd'],
    ['the upload of nothing', '/v2/registry.test/blobs/uploads/'],
  ])('refuses %s', (_why, url) => {
    expect(refusal('127.0.0.1', url)).toMatchObject({ code: 'NAME_UNKNOWN', status: 404 });
  });

  it.each(['/v2/registry.test/../evil.example/x/manifests/v1', '/v2/registry.test/%2e%2e/x/manifests/v1', '/v2/registry.test//x/manifests/v1', '/v2/./registry.test/x/manifests/v1'])(
    'refuses dot segments and escapes: %s',
    (url) => expect(refusal('127.0.0.1', url).code).toBe('NAME_INVALID'),
  );
});

describe('routeRequest: custom domains', () => {
  it('maps the domain and prefix to the upstream registry and prefix', () => {
    const t = target('docker.example.test', '/v2/team/app/x/manifests/1?n=1');
    expect(t).toMatchObject({ mode: 'domain', registry: 'docker.example.test', repository: 'team/app/x', route: { kind: 'manifest', name: 'my-project/team/app/x' } });
    expect(t.upstream).toMatchObject({ registry: 'gcr.io', origin: 'https://gcr.io' });
    expect(t.upstream?.rewrite).toMatchObject({ path: '/v2/my-project/team/app/x/manifests/1', query: 'n=1', alwaysManaged: true, followRedirects: true, tokenRealm: 'https://docker.example.test/_layover/token/team/app' });
    expect(target('DOCKER.EXAMPLE.TEST', '/v2/hub/alpine/blobs/' + DIGEST).upstream).toMatchObject({ registry: 'docker.io', origin: 'https://registry-1.docker.io', rewrite: { path: `/v2/library/alpine/blobs/${DIGEST}` } });
    expect(target('plain.example.test', '/v2/a/b/manifests/v1').upstream).toMatchObject({ registry: 'registry.test:5000', origin: 'https://registry.test:5000', rewrite: { path: '/v2/a/b/manifests/v1' } });
  });

  it('renames the source of a cross-repository mount, or drops a mount from outside', () => {
    const upload = (from: string) => target('docker.example.test', `/v2/team/app/x/blobs/uploads/?mount=${DIGEST}&from=${from}`).upstream?.rewrite?.query;
    expect(upload('team/app/y')).toBe(`mount=${DIGEST}&from=${encodeURIComponent('my-project/team/app/y')}`);
    expect(upload('hub/alpine')).toBe('');
    expect(upload('nowhere')).toBe('');
    expect(target('127.0.0.1', `/v2/docker.io/library/a/blobs/uploads/?from=docker.io/library/b&mount=${DIGEST}`).upstream?.rewrite?.query).toBe(`from=${encodeURIComponent('library/b')}&mount=${DIGEST}`);
    expect(target('127.0.0.1', `/v2/docker.io/library/a/blobs/uploads/?from=quay.io/x&mount=${DIGEST}`).upstream?.rewrite?.query).toBe('');
  });

  it('ignores ns and path prefixes: the domain decides', () => {
    expect(target('plain.example.test', '/v2/registry.test/x/manifests/v1?ns=quay.io').upstream?.rewrite?.path).toBe('/v2/registry.test/x/manifests/v1');
  });

  it('pings and hands out tokens for the right entry', () => {
    expect(target('docker.example.test', '/v2/').upstream).toMatchObject({ registry: 'gcr.io', rewrite: { path: '/v2/' } });
    expect(target('docker.example.test', '/_layover/token/hub?scope=x').upstream).toMatchObject({ registry: 'docker.io', rewrite: { tokenRealm: 'https://docker.example.test/_layover/token/hub' } });
    expect(target('plain.example.test', '/_layover/token').token).toBe(true);
    expect(refusal('docker.example.test', '/_layover/token').code).toBe('NAME_UNKNOWN');
  });

  it("renames a token request's scopes by the entry each repository belongs to, dropping those of other upstreams", () => {
    const token = target('docker.example.test', '/_layover/token/team/app').upstream!.rewrite!;
    expect(token.scopesToUpstream('repository:team/app/x:pull repository:hub/alpine:pull repository:nope:pull registry:catalog:*')).toBe('repository:my-project/team/app/x:pull registry:catalog:*');
    const hub = target('docker.example.test', '/_layover/token/hub').upstream!.rewrite!;
    expect(hub.scopesToUpstream('repository:hub/alpine:pull')).toBe('repository:library/alpine:pull');
    expect(target('127.0.0.1', '/_layover/token/docker.io').upstream!.rewrite!.scopesToUpstream('repository:docker.io/library/alpine:pull repository:quay.io/x:pull')).toBe('repository:library/alpine:pull');
    expect(target('127.0.0.1', '/_layover/token?ns=docker.io').upstream!.rewrite!.scopesToUpstream('repository:library/alpine:pull')).toBe('repository:library/alpine:pull');
  });

  it.each([
    ['outside every prefix', '/v2/other/x/manifests/1', 'NAME_UNKNOWN'],
    ['a sibling of the prefix', '/v2/team/apples/manifests/1', 'NAME_UNKNOWN'],
    ['the catalog', '/v2/_catalog', 'UNSUPPORTED'],
    ['not the API', '/admin', 'NOT_FOUND'],
  ])('refuses %s', (_why, url, code) => {
    expect(refusal('docker.example.test', url).code).toBe(code);
  });

  it('keeps a malformed path for after client authentication', () => {
    expect(target('docker.example.test', '/v2/team/app/../../x/manifests/1').routeError?.code).toBe('NAME_INVALID');
  });
});

describe("routeRequest: /token, Layover's token service for its clients", () => {
  it("is Layover's on docker.proxy, on mirror names and addresses, and on custom domains", () => {
    expect(tokenSite('docker.proxy', '/token?service=quay.io')).toEqual({ kind: 'own', name: 'docker.proxy', ns: null, dockerProxy: true });
    expect(tokenSite('DOCKER.PROXY:443', '/token')).toEqual({ kind: 'own', name: 'docker.proxy', ns: null, dockerProxy: true });
    expect(tokenSite('10.0.0.5:8443', '/token?service=10.0.0.5:8443')).toEqual({ kind: 'own', name: '10.0.0.5:8443', ns: null, dockerProxy: false });
    expect(tokenSite('[FD00::1]', '/token')).toEqual({ kind: 'own', name: '[fd00::1]', ns: null, dockerProxy: false });
    expect(tokenSite(undefined, '/token')).toMatchObject({ name: 'docker.proxy', dockerProxy: true });
    expect(tokenSite('127.0.0.1', '/token?ns=docker.io&service=127.0.0.1')).toEqual({ kind: 'own', name: '127.0.0.1', ns: 'docker.io', dockerProxy: false });
    expect(tokenSite('Docker.Example.Test', '/token?service=docker.example.test')).toEqual({ kind: 'domain', name: 'docker.example.test' });
  });

  it("goes upstream on a registry's own name (auth.docker.io serves its tokens at /token)", () => {
    expect(target('docker.io', '/token?service=registry.docker.io')).toMatchObject({ mode: 'host', registry: 'docker.io', route: null, token: false });
    expect(target('quay.io', '/token')).toMatchObject({ mode: 'host', upstream: { origin: 'https://quay.io' } });
  });

  it('is no way around the mirror checks: a bad ns is refused, other paths are not the token service', () => {
    expect(refusal('127.0.0.1', '/token?ns=evil.example').code).toBe('NAME_UNKNOWN');
    expect(refusal('127.0.0.1', '/token?ns=registry.test&ns=quay.io').code).toBe('NAME_UNKNOWN');
    expect(refusal('127.0.0.1', '/token/registry.test').code).toBe('NAME_UNKNOWN');
    expect(refusal('docker.example.test', '/tokens').code).toBe('NOT_FOUND');
  });
});

describe('routeRequest: only the ports REGISTRIES gives a registry are reached', () => {
  const ported = {
    ...tables,
    ports: new RegistryPorts(['registry.test', 'registry.test:5000', 'quay.io', '*.pkg.dev:5000', 'docker.example.test']),
  };
  const routed = (host: string, url: string): Routing => routeRequest(host, url, ported);

  it.each(['quay.io:8443', 'quay.io:22', 'quay.io:5000', 'registry.test:6000', 'us-docker.pkg.dev', 'us-docker.pkg.dev:443', 'docker.io:8080', 'docker.proxy:9000'])(
    'refuses Host %s with one answer, before anything is dialled',
    (host) => {
      const routing = routed(host, '/v2/a/manifests/v1');
      if (!isRefusal(routing)) throw new Error(`routed: ${JSON.stringify(routing)}`);
      expect(routing.refusal).toMatchObject({ code: 'NAME_UNKNOWN', status: 404 });
    },
  );

  it.each([
    ['registry.test', 'https://registry.test'],
    ['registry.test:443', 'https://registry.test'],
    ['registry.test:5000', 'https://registry.test:5000'],
    ['quay.io', 'https://quay.io'],
    ['us-docker.pkg.dev:5000', 'https://us-docker.pkg.dev:5000'],
    ['docker.io', 'https://registry-1.docker.io'],
  ])('routes Host %s to %s', (host, origin) => {
    const routing = routed(host, '/v2/a/manifests/v1');
    if (isRefusal(routing) || isClientTokenRequest(routing)) throw new Error(`not routed: ${JSON.stringify(routing)}`);
    expect(routing.upstream?.origin).toBe(origin);
  });

  it('holds mirror requests to the same ports: ns and the relay path', () => {
    for (const url of ['/v2/a/manifests/v1?ns=quay.io:8443', '/_layover/token/quay.io:8443?service=x']) {
      const routing = routed('10.0.0.1', url);
      expect(isRefusal(routing) && routing.refusal.code, url).toBe('NAME_UNKNOWN');
    }
    const ns = routed('10.0.0.1', '/v2/a/manifests/v1?ns=registry.test:5000');
    expect(!isRefusal(ns) && !isClientTokenRequest(ns) && ns.upstream?.origin).toBe('https://registry.test:5000');
  });
});
