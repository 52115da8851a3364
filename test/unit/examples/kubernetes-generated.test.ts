import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { kubernetesConfigMap } from '../../../src/dns/coredns.js';
import { configFor, examplePath, hasProgram, readText, ROOT, yamlDocuments } from './example-files.js';
import { objects, service, settings } from './kubernetes-example.js';
import type { KubeObject } from './kubernetes-objects.js';

// The files of examples/kubernetes/ that are made from others: the CoreDNS ConfigMap by the CLI's
// generator, the kustomize build from the manifests.

describe('examples/kubernetes: generated and assembled files', () => {
  const settingsConfig = configFor(Object.fromEntries(Object.entries(settings.data).map(([k, v]) => [k, String(v)])));
  const expected = kubernetesConfigMap({ registries: settingsConfig.registries, advertise: settingsConfig.advertise });

  it('coredns-configmap.yaml is `layover coredns --k8s` for layover-settings', () => {
    expect(readText(examplePath('kubernetes', 'coredns-configmap.yaml'))).toBe(expected);
    expect(expected).toContain(`${service.spec.clusterIP} registry.k8s.io`);
  });

  it('generate-coredns-configmap writes that file', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'layover-examples-')), 'coredns-configmap.yaml');
    execFileSync(examplePath('kubernetes', 'generate-coredns-configmap'), [out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    expect(readFileSync(out, 'utf8')).toBe(expected);
  });

  it('kustomization.yaml lists the manifests, and kustomize builds the same objects', () => {
    const kustomization = yamlDocuments(examplePath('kubernetes', 'kustomization.yaml'))[0] as { resources: string[] };
    expect(kustomization.resources.sort()).toEqual(['layover.yaml', 'node-setup.yaml']);
    if (!hasProgram('kubectl')) return;
    const built = execFileSync('kubectl', ['kustomize', examplePath('kubernetes')], { encoding: 'utf8' });
    const key = (o: KubeObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const builtObjects = parseAllDocuments(built).map((d) => d.toJS() as KubeObject);
    expect(builtObjects.map(key).sort()).toEqual(objects.map(key).sort());
  });
});
