import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXAMPLES, examplePath, filesUnder, readText, ROOT, yamlDocuments } from './example-files.js';
import { find, manifests, type ConfigMap } from './kubernetes-objects.js';

// Every file under examples/: YAML that reads the same to every parser, shell scripts that
// shellcheck accepts, scripts that name only what exists, READMEs that open with their command.

const files = filesUnder(EXAMPLES);
const yamlFiles = files.filter((f) => /\.ya?ml$/.test(f));
const name = (path: string): string => relative(ROOT, path);

/** Shell scripts: by their #! line, plus the node setup script inside its ConfigMap. */
function shellScripts(): { label: string; path: string }[] {
  const scripts = files.filter((f) => readText(f).startsWith('#!/usr/bin/env bash')).map((path) => ({ label: name(path), path }));
  const nodeSetup = String(find<ConfigMap>(manifests('node-setup.yaml'), 'ConfigMap', 'layover-node-setup', 'layover').data['node-setup.sh']);
  const path = join(mkdtempSync(join(tmpdir(), 'layover-examples-')), 'node-setup.sh');
  writeFileSync(path, nodeSetup);
  return [...scripts, { label: 'examples/kubernetes/node-setup.yaml: node-setup.sh', path }];
}

describe('examples/ files', () => {
  it('has YAML files, each of which parses without a warning and means the same in YAML 1.1 and 1.2', () => {
    expect(yamlFiles.map(name).sort()).toEqual([
      'examples/compose/compose.yaml',
      'examples/kubernetes/coredns-configmap.yaml',
      'examples/kubernetes/kind-config.yaml',
      'examples/kubernetes/kustomization.yaml',
      'examples/kubernetes/layover.yaml',
      'examples/kubernetes/node-setup.yaml',
      'examples/kubernetes/replicas/kustomization.yaml',
      'examples/kubernetes/replicas/layover.yaml',
      'examples/kubernetes/replicas/redis.yaml',
      'examples/prometheus/prometheus.yml',
    ]);
    for (const file of yamlFiles) expect(yamlDocuments(file, '1.1'), name(file)).toEqual(yamlDocuments(file, '1.2'));
  });

  const scripts = shellScripts();

  it('has executable shell scripts', () => {
    expect(scripts.map((s) => s.label)).toEqual(expect.arrayContaining(['examples/kubernetes/kind.sh', 'examples/kubernetes/generate-coredns-configmap', 'examples/kubernetes/replicas/make-secrets']));
    for (const { label, path } of scripts.filter((s) => s.path.startsWith(EXAMPLES))) expect(() => accessSync(path, constants.X_OK), label).not.toThrow();
  });

  it.each(scripts)('$label: bash -n', ({ path }) => {
    const result = spawnSync('bash', ['-n', path], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it.each(scripts)('$label: shellcheck', ({ path }) => {
    // -x follows `source` as the script's own directives say.
    const result = spawnSync('shellcheck', ['-x', path], { encoding: 'utf8', cwd: dirname(path) });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('kind.sh names the cluster, namespace, workloads and files the example has', () => {
    const script = readText(examplePath('kubernetes', 'kind.sh'));
    const value = (variable: string): string => new RegExp(`^${variable}=(\\S+)$`, 'm').exec(script)![1]!;
    const kind = yamlDocuments(examplePath('kubernetes', 'kind-config.yaml'))[0] as { name: string };
    expect(value('cluster')).toBe(kind.name);
    const objects = manifests('layover.yaml', 'node-setup.yaml');
    find(objects, 'Namespace', value('namespace'));
    for (const line of script.split('\n').filter((l) => l.includes('-n "$namespace"'))) {
      for (const [, kindName, objectName] of line.matchAll(/\b(deployment|daemonset)\/([\w-]+)/g)) {
        find(objects, kindName === 'deployment' ? 'Deployment' : 'DaemonSet', objectName!, value('namespace'));
      }
    }
    for (const [, file] of script.matchAll(/"\$here\/([\w.-]+)"/g)) expect(existsSync(examplePath('kubernetes', file!)), file).toBe(true);
    expect(script).toContain('kind create cluster --name "$cluster" --config "$here/kind-config.yaml"');
    expect(script).toContain('"${kc[@]}" apply -k "$here"');
  });

  it('has READMEs that open with the one command to run the example, naming files that exist', () => {
    const readmes = files.filter((f) => f.endsWith('README.md') && dirname(f) !== EXAMPLES);
    expect(readmes.map(name).sort()).toEqual(['examples/compose/README.md', 'examples/kubernetes/README.md', 'examples/kubernetes/replicas/README.md', 'examples/systemd/README.md']);
    for (const readme of readmes) {
      const [, command] = /^# .+\n\n```sh\n(.+)\n```\n/.exec(readText(readme)) ?? [];
      expect(command, name(readme)).toBeDefined();
      for (const [path] of command!.matchAll(/examples\/[\w./-]+/g)) expect(existsSync(join(ROOT, path)), path).toBe(true);
    }
    const index = readText(join(EXAMPLES, 'README.md'));
    for (const readme of readmes) expect(index).toContain(`(${relative(EXAMPLES, dirname(readme))}/)`);
  });
});
