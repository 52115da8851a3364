import { describe, expect, it } from 'vitest';
import { registryUpstream, upstreamTarget } from '../../../src/proxy/upstream-target.js';
import { HostnameSet } from '../../../src/registry/hostname.js';

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
    expect(registryUpstream('registry.test:5000')).toEqual({ registry: 'registry.test', origin: 'https://registry.test:5000' });
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
