import { describe, expect, it } from 'vitest';
import { upstreamTarget } from '../../../src/proxy/upstream-target.js';
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
