import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { corednsStanza, kubernetesConfigMap } from '../../../src/dns/coredns.js';
import { hostsFileLines } from '../../../src/dns/hosts-file.js';

const registries = ['quay.io', 'registry-1.docker.io', '*.pkg.dev', 'docker.proxy'];
const advertise = ['10.0.0.5', 'fd00::5'];

/** The `{ ... }` blocks of a Corefile fragment as [header, body lines]. */
function blocks(text: string): [string, string[]][] {
  const result: [string, string[]][] = [];
  let current: [string, string[]] | null = null;
  let depth = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.endsWith('{')) {
      depth += 1;
      if (depth === 1) current = [line.slice(0, -1).trim(), []];
    } else if (line === '}') {
      depth -= 1;
      if (depth === 0 && current) result.push(current);
    } else current?.[1].push(line);
  }
  expect(depth).toBe(0);
  return result;
}

describe('corednsStanza', () => {
  const stanza = corednsStanza({ registries, advertise, ttl: 30 });
  const parsed = blocks(stanza);

  it('maps every exact name to every advertised address, then falls through', () => {
    const [header, body] = parsed[0]!;
    expect(header).toBe('hosts');
    expect(body).toContain('10.0.0.5 quay.io registry-1.docker.io docker.proxy');
    expect(body).toContain('fd00::5 quay.io registry-1.docker.io docker.proxy');
    expect(body).toContain('ttl 30');
    expect(body.at(-1)).toBe('fallthrough');
    expect(stanza).not.toMatch(/\d \*\.pkg\.dev/);
  });

  it('expresses wildcards with template blocks, one per address family', () => {
    const templates = parsed.filter(([header]) => header.startsWith('template'));
    expect(templates.map(([h]) => h)).toEqual(['template IN A pkg.dev', 'template IN AAAA pkg.dev']);
    const [, aBody] = templates[0]!;
    expect(aBody).toContain('answer "{{ .Name }} 30 IN A 10.0.0.5"');
    const match = /^match "(.*)"$/.exec(aBody[0]!)![1]!.replace(/\\\\/g, '\\');
    const re = new RegExp(match);
    expect(re.test('europe-docker.pkg.dev.')).toBe(true);
    expect(re.test('pkg.dev.')).toBe(false);
    expect(re.test('evilpkg.dev.')).toBe(false);
  });
});

describe('kubernetesConfigMap', () => {
  const doc = parse(kubernetesConfigMap({ registries, advertise: ['10.96.0.53'] })) as {
    kind: string;
    metadata: { name: string; namespace: string };
    data: { Corefile: string };
  };
  it('is the kube-system coredns ConfigMap', () => {
    expect(doc.kind).toBe('ConfigMap');
    expect(doc.metadata).toEqual({ name: 'coredns', namespace: 'kube-system' });
  });
  it('puts the stanza inside the root server block, before forward', () => {
    const corefile = doc.data.Corefile;
    const [root] = blocks(corefile);
    expect(root![0]).toBe('.:53');
    expect(corefile.indexOf('10.96.0.53 quay.io')).toBeGreaterThan(corefile.indexOf('.:53 {'));
    expect(corefile.indexOf('10.96.0.53 quay.io')).toBeLessThan(corefile.indexOf('forward . /etc/resolv.conf'));
    expect(corefile).toContain('kubernetes cluster.local in-addr.arpa ip6.arpa');
  });
});

describe('hostsFileLines', () => {
  const text = hostsFileLines({ registries, advertise });
  it('gives one line per address and name', () => {
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines).toEqual([
      '10.0.0.5 quay.io',
      '10.0.0.5 registry-1.docker.io',
      '10.0.0.5 docker.proxy',
      'fd00::5 quay.io',
      'fd00::5 registry-1.docker.io',
      'fd00::5 docker.proxy',
    ]);
  });
  it('lists wildcards in a comment instead of dropping them', () => {
    expect(text).toMatch(/^# .*wildcards.*\*\.pkg\.dev$/m);
  });
});
