import { describe, expect, it } from 'vitest';
import { HitTargets, MAX_HIT_TARGET_KEY } from '../../../src/proxy/hit-targets.js';
import { isClientTokenRequest, isRefusal } from '../../../src/proxy/request-routing.js';
import { routeRequest } from '../../../src/proxy/request-target.js';
import { CustomDomainRoutes } from '../../../src/registry/custom-domain-routes.js';
import { HostnameSet } from '../../../src/registry/hostname.js';

const tables = {
  intercepted: new HostnameSet(['registry.test', 'quay.io', 'docker.proxy']),
  domains: new CustomDomainRoutes([]),
};
const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const manifestUrl = (n: number): string => `/v2/team/app/manifests/${digest(n)}`;

describe('the hit path\'s targets', () => {
  it('are the routing\'s upstream, route and via, kept for the next request with the same Host and target', () => {
    const targets = new HitTargets(tables);
    const first = targets.of('registry.test', manifestUrl(1));
    const routing = routeRequest('registry.test', manifestUrl(1), tables);
    if (isRefusal(routing) || isClientTokenRequest(routing)) throw new Error('the manifest was refused');
    expect(first).toEqual({ upstream: routing.upstream, route: routing.route, via: {}, kept: true });
    expect(targets.of('registry.test', manifestUrl(1))).toBe(first);
    // Another Host is another key, even for the same path.
    expect(targets.of('quay.io', manifestUrl(1))?.upstream.registry).toBe('quay.io');
    expect(targets.size).toBe(2);
  });

  it('name a mirror\'s form in via, as the request line does', () => {
    const targets = new HitTargets(tables);
    expect(targets.of('docker.proxy', `${manifestUrl(2)}?ns=registry.test`)).toMatchObject({ via: { via: 'ns' }, upstream: { registry: 'registry.test' } });
    expect(targets.of('docker.proxy', `/v2/registry.test/team/app/blobs/${digest(3)}`)).toMatchObject({ via: { via: 'path' }, route: { kind: 'blob', name: 'team/app' } });
  });

  it('are none, and nothing is kept, for what the hit path leaves to fastify', () => {
    const targets = new HitTargets(tables);
    for (const [host, url] of [
      ['registry.test', '/v2/'],
      ['registry.test', '/v2/team/app/tags/list'],
      ['registry.test', '/v2/team/app/blobs/uploads/'],
      ['registry.test', '/v2/team/app/manifests/sha256:zz'],
      ['registry.test', '/token?scope=repository:team/app:pull'],
      ['elsewhere.test', manifestUrl(4)],
      ['docker.proxy', manifestUrl(4)],
      [undefined, manifestUrl(4)],
    ] as const) {
      expect(targets.of(host, url), `${host} ${url}`).toBeUndefined();
    }
    expect(targets.size).toBe(0);
  });

  it('are routed each time for a request without a Host (HTTP/1.0), never kept', () => {
    const targets = new HitTargets(tables);
    // containerd's `ns` form names the registry without a Host: a target, but no key to keep it under.
    const url = `${manifestUrl(5)}?ns=registry.test`;
    const first = targets.of(undefined, url);
    expect(first).toMatchObject({ via: { via: 'ns' }, upstream: { registry: 'registry.test' }, kept: false });
    expect(targets.of(undefined, url)).not.toBe(first);
    expect(targets.size).toBe(0);
  });

  it('stay within their bound: the first kept go first, and an overlong target is not kept', () => {
    const targets = new HitTargets(tables, 3);
    const kept = [1, 2, 3, 4, 5].map((n) => targets.of('registry.test', manifestUrl(n)));
    expect(targets.size).toBe(3);
    // 1 and 2 went: asked again, they are routed anew (an equal target, not the one kept before).
    const again = targets.of('registry.test', manifestUrl(1));
    expect(again).toEqual(kept[0]);
    expect(again).not.toBe(kept[0]);
    expect(targets.of('registry.test', manifestUrl(5))).toBe(kept[4]);
    expect(targets.size).toBe(3);

    const long = new HitTargets(tables);
    // Repository names stop at 255 characters: the query makes the target long (it goes upstream as it came).
    const url = `${manifestUrl(6)}?pad=${'a'.repeat(MAX_HIT_TARGET_KEY)}`;
    expect(long.of('registry.test', url)).toMatchObject({ route: { kind: 'manifest', name: 'team/app' }, kept: false });
    expect(long.size).toBe(0);
  });
});
