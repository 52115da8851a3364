import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { corednsStanza, kubernetesConfigMap } from '../../../src/dns/coredns.js';

// The examples in coredns/ are generator output: they must not drift from it.
const config = loadConfig({ env: {}, flags: { advertise: '10.0.0.53', 'upstream-dns': '127.0.0.1:9' } });
const options = { registries: config.registries, advertise: config.advertise };
const read = (name: string): string => readFileSync(new URL(`../../../coredns/${name}`, import.meta.url), 'utf8');

describe('coredns/ examples', () => {
  it('Corefile holds the current stanza', () => {
    const indented = corednsStanza(options)
      .trimEnd()
      .split('\n')
      .map((line) => `    ${line}`)
      .join('\n');
    expect(read('Corefile')).toContain(indented);
  });
  it('coredns-configmap.yaml is the current ConfigMap', () => {
    expect(read('coredns-configmap.yaml')).toBe(kubernetesConfigMap(options));
  });
});
