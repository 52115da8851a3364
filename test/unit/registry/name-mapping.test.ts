import { describe, expect, it } from 'vitest';
import { clientLink, clientLocation } from '../../../src/registry/client-location.js';
import { CustomDomainRoutes } from '../../../src/registry/custom-domain-routes.js';
import { NameMapping } from '../../../src/registry/name-mapping.js';
import type { CustomDomain } from '../../../src/config/custom-domains.js';

describe('NameMapping', () => {
  const domain = new NameMapping('team/app', 'my-project/team/app');
  const mirror = new NameMapping('docker.io', '');

  it('swaps whole leading components, both ways', () => {
    expect(domain.toUpstream('team/app/x')).toBe('my-project/team/app/x');
    expect(domain.toUpstream('team/app')).toBe('my-project/team/app');
    expect(domain.toClient('my-project/team/app/x')).toBe('team/app/x');
    expect(mirror.toUpstream('docker.io/library/alpine')).toBe('library/alpine');
    expect(mirror.toClient('library/alpine')).toBe('docker.io/library/alpine');
    expect(NameMapping.IDENTITY.toUpstream('a/b')).toBe('a/b');
    expect(NameMapping.IDENTITY.identity).toBe(true);
    expect(domain.identity).toBe(false);
  });

  it.each(['team/apples', 'team', 'other/app/x', 'team/app2/x', ''])('refuses a name outside the prefix: %j', (name) => {
    expect(domain.toUpstream(name)).toBeNull();
  });

  it('refuses what would be no repository upstream', () => {
    expect(mirror.toUpstream('docker.io')).toBeNull();
    expect(new NameMapping('', 'p').toUpstream('a'.repeat(255))).toBeNull();
    expect(domain.toClient('my-project/other')).toBeNull();
  });

  it('renames repository scopes and drops those outside, keeping other scopes', () => {
    expect(domain.scopesToClient('repository:my-project/team/app/x:pull')).toBe('repository:team/app/x:pull');
    expect(domain.scopesToClient('repository:my-project/team/app/x:pull,push repository:elsewhere:pull registry:catalog:*')).toBe('repository:team/app/x:pull,push registry:catalog:*');
    expect(domain.scopesToUpstream('repository:team/app/x:pull')).toBe('repository:my-project/team/app/x:pull');
    expect(domain.scopesToUpstream('repository(plugin):team/app/y:pull')).toBe('repository(plugin):my-project/team/app/y:pull');
    expect(domain.scopesToUpstream('repository:../../x:pull')).toBe('');
    expect(mirror.scopesToUpstream('repository:docker.io/library/alpine:pull')).toBe('repository:library/alpine:pull');
  });
});

describe('clientLocation', () => {
  const from = { origin: 'https://gcr.io', path: '/v2/my-project/team/app/x/blobs/uploads/', query: '' };
  const names = new NameMapping('team/app', 'my-project/team/app');

  it('turns a Location back into the upstream API into a relative one in client names', () => {
    expect(clientLocation('/v2/my-project/team/app/x/blobs/uploads/u1?_state=abc%3D', from, names, '')).toBe('/v2/team/app/x/blobs/uploads/u1?_state=abc%3D');
    expect(clientLocation('https://gcr.io/v2/my-project/team/app/x/blobs/uploads/u1', from, names, '')).toBe('/v2/team/app/x/blobs/uploads/u1');
    expect(clientLocation('u2', from, names, '')).toBe('/v2/team/app/x/blobs/uploads/u2');
  });

  it("adds containerd's ns", () => {
    const ns = { origin: 'https://registry-1.docker.io', path: '/v2/library/alpine/blobs/uploads/', query: '' };
    expect(clientLocation('/v2/library/alpine/blobs/uploads/u?x=1', ns, NameMapping.IDENTITY, 'ns=docker.io')).toBe('/v2/library/alpine/blobs/uploads/u?x=1&ns=docker.io');
    expect(clientLocation('/v2/library/alpine/blobs/uploads/u', ns, NameMapping.IDENTITY, 'ns=docker.io')).toBe('/v2/library/alpine/blobs/uploads/u?ns=docker.io');
  });

  it('leaves other hosts and unparseable values alone', () => {
    expect(clientLocation('https://storage.googleapis.com/bucket/blob?sig=1', from, names, 'ns=x')).toBe('https://storage.googleapis.com/bucket/blob?sig=1');
    expect(clientLocation('http://[bad', from, names, '')).toBe('http://[bad');
  });

  it('renames Link targets', () => {
    const tags = { origin: 'https://gcr.io', path: '/v2/my-project/team/app/x/tags/list', query: 'n=1' };
    expect(clientLink('</v2/my-project/team/app/x/tags/list?n=1&last=a>; rel="next"', tags, names, '')).toBe('</v2/team/app/x/tags/list?n=1&last=a>; rel="next"');
  });
});

describe('CustomDomainRoutes', () => {
  const entry = (from: string, to: string): CustomDomain => {
    const [domain = '', ...path] = from.split('/');
    const [registry = '', ...prefix] = to.split('/');
    return { domain, pathPrefix: path.join('/'), registry, upstreamPrefix: prefix.join('/'), certFile: null, keyFile: null };
  };
  const routes = new CustomDomainRoutes([
    entry('docker.example.com/team/app', 'gcr.io/my-project/team/app'),
    entry('docker.example.com/team', 'quay.io/team'),
    entry('other.example.com', 'registry-1.docker.io/library'),
  ]);

  it('picks the longest prefix that holds the name', () => {
    expect(routes.forRepository('docker.example.com', 'team/app/x')?.entry.registry).toBe('gcr.io');
    expect(routes.forRepository('docker.example.com', 'team/app')?.entry.registry).toBe('gcr.io');
    expect(routes.forRepository('docker.example.com', 'team/apples')?.entry.registry).toBe('quay.io');
    expect(routes.forRepository('docker.example.com', 'outside/x')).toBeNull();
    expect(routes.forRepository('DOCKER.example.com.', 'team/y')?.entry.registry).toBe('quay.io');
    expect(routes.forRepository('other.example.com', 'alpine')?.mapping.toUpstream('alpine')).toBe('library/alpine');
  });

  it('knows its domains and their defaults', () => {
    expect(routes.has('Docker.Example.com')).toBe(true);
    expect(routes.has('example.com')).toBe(false);
    expect(routes.defaultFor('docker.example.com')?.entry.registry).toBe('gcr.io');
    expect(routes.defaultFor('other.example.com')?.entry.pathPrefix).toBe('');
    expect(routes.byPrefix('docker.example.com', 'team')?.entry.registry).toBe('quay.io');
    expect(routes.byPrefix('docker.example.com', 'nope')).toBeNull();
  });
});
