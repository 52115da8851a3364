import { describe, expect, it } from 'vitest';
import { registryUpstream, splitHostPort, upstreamTarget } from '../../../src/proxy/upstream-target.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { sourceIsRegistry } from '../../../src/registry/same-registry.js';
import { originHost } from '../../../src/upstream/origin-host.js';

const intercepted = new HostnameSet(['quay.io', '*.pkg.dev', 'docker.io', 'index.docker.io', 'registry-1.docker.io', 'docker.proxy', 'r.example']);

describe('upstreamTarget', () => {
  it('proxies intercepted names to themselves over https', () => {
    expect(upstreamTarget('quay.io', intercepted)).toEqual({ registry: 'quay.io', origin: 'https://quay.io' });
    expect(upstreamTarget('Quay.IO:443', intercepted)).toEqual({ registry: 'quay.io', origin: 'https://quay.io' });
    expect(upstreamTarget('europe-docker.pkg.dev', intercepted)?.origin).toBe('https://europe-docker.pkg.dev');
    expect(upstreamTarget('r.example:5000', intercepted)?.origin).toBe('https://r.example:5000');
  });
  it("sends Docker Hub's aliases to registry-1.docker.io", () => {
    expect(upstreamTarget('docker.io', intercepted)).toEqual({ registry: 'docker.io', origin: 'https://registry-1.docker.io' });
    expect(upstreamTarget('index.docker.io', intercepted)?.origin).toBe('https://registry-1.docker.io');
  });
  it.each([undefined, '', 'example.com', 'docker.proxy', '127.0.0.1', '[::1]:443', 'quay.io:99999x', 'quay.io.evil.com', 'a b'])(
    'is no open proxy: %j',
    (host) => expect(upstreamTarget(host, intercepted)).toBeNull(),
  );
});

describe('registryUpstream (a custom domain target: no interception check)', () => {
  it('keeps the port in the name and maps Docker Hub', () => {
    expect(registryUpstream('gcr.io')).toEqual({ registry: 'gcr.io', origin: 'https://gcr.io' });
    expect(registryUpstream('registry.test:5000')).toEqual({ registry: 'registry.test:5000', origin: 'https://registry.test:5000' });
    expect(registryUpstream('docker.io')).toEqual({ registry: 'docker.io', origin: 'https://registry-1.docker.io' });
    expect(registryUpstream('r.example:443')).toEqual({ registry: 'r.example', origin: 'https://r.example' });
  });
  it.each(['', 'a b', 'r.example:0', 'r.example:65536', 'https://r.example', '[::1]'])('refuses %j', (value) => expect(registryUpstream(value)).toBeNull());
});

describe('upstreamTarget ports', () => {
  it('refuses ports outside 1..65535', () => {
    expect(upstreamTarget('quay.io:99999', intercepted)).toBeNull();
    expect(upstreamTarget('quay.io:0', intercepted)).toBeNull();
    expect(upstreamTarget('quay.io:65535', intercepted)?.origin).toBe('https://quay.io:65535');
  });
});

describe('splitHostPort', () => {
  it.each([
    ['registry.test', { host: 'registry.test', port: null }],
    ['Registry.Test:443', { host: 'registry.test', port: null }],
    ['registry.test:5000', { host: 'registry.test', port: 5000 }],
    ['registry.test.', { host: 'registry.test', port: null }],
  ])('splits %s', (value, parts) => {
    expect(splitHostPort(value)).toEqual(parts);
    // Asked again (from the memo): the same answer.
    expect(splitHostPort(value)).toEqual(parts);
  });

  it.each(['', 'registry.test:0', 'registry.test:65536', 'registry.test:', '[::1]:443', 'a b', 'registry.test:5000:1'])('refuses %j, every time', (value) => {
    expect(splitHostPort(value)).toBeNull();
    expect(splitHostPort(value)).toBeNull();
  });

  it('hands out parts no caller can change for the next request', () => {
    const parts = splitHostPort('frozen.test:5000')!;
    expect(() => Object.assign(parts, { port: 22 })).toThrow(TypeError);
    expect(splitHostPort('frozen.test:5000')).toEqual({ host: 'frozen.test', port: 5000 });
  });

  it('refuses a header longer than any host and port, and a name of 253 characters still splits', () => {
    const label = 'a'.repeat(63);
    const longest = `${label}.${label}.${label}.${'a'.repeat(61)}`;
    expect(longest).toHaveLength(253);
    expect(splitHostPort(`${longest}:65535`)).toEqual({ host: longest, port: 65535 });
    expect(splitHostPort(`${'a.'.repeat(5000)}test`)).toBeNull();
  });

  it('stays right past its bound of remembered names', () => {
    for (let i = 0; i < 3000; i++) expect(splitHostPort(`n${i}.test:${(i % 60000) + 1}`)).toEqual({ host: `n${i}.test`, port: (i % 60000) + 1 === 443 ? null : (i % 60000) + 1 });
    expect(splitHostPort('n0.test:1')).toEqual({ host: 'n0.test', port: 1 });
  });
});

describe('originHost', () => {
  it.each([
    ['https://registry.test', 'registry.test'],
    ['https://registry.test:5000', 'registry.test:5000'],
    ['https://registry.test:443', 'registry.test'],
    ['https://[::1]:8443', '[::1]:8443'],
  ])('%s -> %s, from the memo as from the URL', (origin, host) => {
    expect(originHost(origin)).toBe(host);
    expect(originHost(origin)).toBe(new URL(origin).host);
  });
});

describe('a registry name, and sourceIsRegistry', () => {
  it('names a registry with its port when it is not 443, however the client named it', () => {
    expect(upstreamTarget('R.Example:5000', intercepted)).toEqual({ registry: 'r.example:5000', origin: 'https://r.example:5000' });
    expect(registryUpstream('r.example:5000')).toEqual({ registry: 'r.example:5000', origin: 'https://r.example:5000' });
    expect(upstreamTarget('r.example:443', intercepted)?.registry).toBe('r.example');
    expect(registryUpstream('r.example')?.registry).toBe('r.example');
  });
  it('tells ports of one host apart, and Docker Hub by any of its names', () => {
    expect(sourceIsRegistry('r.example:5000/app', 'r.example:5000')).toBe(true);
    expect(sourceIsRegistry('R.Example:5000/app', 'r.example:5000')).toBe(true);
    expect(sourceIsRegistry('r.example:5000/app', 'r.example:5001')).toBe(false);
    expect(sourceIsRegistry('r.example:5000/app', 'r.example')).toBe(false);
    // A source recorded before ports were kept names only the host: only the registry on 443 is it.
    expect(sourceIsRegistry('r.example/app', 'r.example:5000')).toBe(false);
    expect(sourceIsRegistry('r.example/app', 'r.example')).toBe(true);
    expect(sourceIsRegistry('docker.io/library/alpine', 'registry-1.docker.io')).toBe(true);
    expect(sourceIsRegistry('index.docker.io/library/alpine', 'docker.io')).toBe(true);
    expect(sourceIsRegistry('quay.io/app', 'docker.io')).toBe(false);
  });
});
