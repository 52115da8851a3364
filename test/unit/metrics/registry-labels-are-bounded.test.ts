import { describe, expect, it } from 'vitest';
import { MAX_REGISTRY_LABELS, OTHER_REGISTRIES, RegistryLabels } from '../../../src/metrics/registry-labels.js';
import { HostnameSet } from '../../../src/registry/hostname.js';

describe('registry label values', () => {
  it('are the registry names, at most MAX_REGISTRY_LABELS of them: every name beyond is `other`, those seen before keep theirs', () => {
    const labels = new RegistryLabels();
    expect(labels.label('ghcr.io')).toBe('ghcr.io');
    for (let i = 0; i < 500; i++) labels.label(`r${i}.example`);
    const values = new Set(Array.from({ length: 500 }, (_, i) => labels.label(`r${i}.example`)));
    expect(values.size).toBe(MAX_REGISTRY_LABELS);
    expect(values.has(OTHER_REGISTRIES)).toBe(true);
    expect(labels.label('ghcr.io')).toBe('ghcr.io');
    expect(labels.label('never-seen.example')).toBe(OTHER_REGISTRIES);
  });

  it('name every registry under a wildcard of REGISTRIES by the wildcard, ports and case aside', () => {
    const labels = new RegistryLabels();
    labels.useRegistries(new HostnameSet(['registry.test', '*.pkg.dev', 'docker.proxy']));
    expect(labels.label('europe-docker.pkg.dev')).toBe('*.pkg.dev');
    expect(labels.label('US-Docker.pkg.dev:5000')).toBe('*.pkg.dev');
    expect(labels.label('a.b.pkg.dev')).toBe('*.pkg.dev');
    expect(labels.label('registry.test')).toBe('registry.test');
    expect(labels.label('registry.test:5000')).toBe('registry.test:5000');
    // The suffix alone is no name under it.
    expect(labels.label('pkg.dev')).toBe('pkg.dev');
    expect(labels.label(undefined)).toBe('');
    expect(labels.label('')).toBe('');
  });
});
