import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { configFor, dockerfile, examplePath, yamlDocuments } from './example-files.js';
import { containerEnv, find, manifests, ofKind, type ConfigMap, type KubeObject, type PodDisruptionBudget, type Secret, type Service, type Workload } from './kubernetes-objects.js';

/**
 * examples/kubernetes/replicas/ loaded once: its manifests plus the Secrets its kustomization
 * generates from the files `make-secrets` writes (run here into a temp dir, with made-up bucket
 * credentials), so every reference can be followed to a value.
 */

export const NAMESPACE = 'layover';
export const REPLICAS_DIR = examplePath('kubernetes', 'replicas');
/** What make-secrets is given: a bucket and credentials no real account has. */
export const MADE_UP_STORAGE = {
  blobStore: 's3://layover-cache/blobs?region=eu-west-1',
  env: { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEEXAMPLE00', AWS_SECRET_ACCESS_KEY: 'made-up-secret-for-the-example-tests', AWS_REGION: 'eu-west-1' },
};

/** Runs make-secrets into `dir` (a new temp dir by default); returns the dir. */
export function makeSecrets(dir = mkdtempSync(join(tmpdir(), 'layover-replicas-secrets-')), blobStore = MADE_UP_STORAGE.blobStore): string {
  execFileSync(join(REPLICAS_DIR, 'make-secrets'), [blobStore], {
    env: { PATH: process.env.PATH, ...MADE_UP_STORAGE.env, SECRETS_DIR: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return dir;
}

interface SecretGenerator {
  name: string;
  namespace?: string;
  files?: string[];
  envs?: string[];
}

export interface Kustomization {
  resources: string[];
  secretGenerator: SecretGenerator[];
  images?: { name: string; newName?: string }[];
}

export const kustomization = yamlDocuments(join(REPLICAS_DIR, 'kustomization.yaml'))[0] as Kustomization;

/** `KEY=VALUE` lines, as kustomize reads an env file. */
export function envFile(text: string): Record<string, string> {
  const entries = text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
  return Object.fromEntries(entries.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

/** The Secrets kustomize would generate, unhashed, from the files under `secretsDir` (the generators' `secrets/`). */
export function generatedSecrets(secretsDir: string): Secret[] {
  const read = (path: string): string => readFileSync(join(secretsDir, path.replace(/^secrets\//, '')), 'utf8');
  return kustomization.secretGenerator.map((g) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: g.name, namespace: g.namespace },
    stringData: {
      ...Object.fromEntries((g.files ?? []).map((f) => [basename(f), read(f)])),
      ...Object.assign({}, ...(g.envs ?? []).map((f) => envFile(read(f)))),
    },
  }));
}

export const secretsDir = makeSecrets();
export const manifestObjects: KubeObject[] = manifests('replicas/layover.yaml', 'replicas/redis.yaml');
export const objects: KubeObject[] = [...manifestObjects, ...generatedSecrets(secretsDir)];
export const image = dockerfile();
export const deployment = find<Workload>(objects, 'Deployment', 'layover', NAMESPACE);
export const redis = find<Workload>(objects, 'StatefulSet', 'layover-redis', NAMESPACE);
export const service = find<Service>(objects, 'Service', 'layover', NAMESPACE);
export const redisService = find<Service>(objects, 'Service', 'layover-redis', NAMESPACE);
export const settings = find<ConfigMap>(objects, 'ConfigMap', 'layover-settings', NAMESPACE);
export const budget = find<PodDisruptionBudget>(objects, 'PodDisruptionBudget', 'layover', NAMESPACE);
export const workloads = [...ofKind<Workload>(objects, 'Deployment'), ...ofKind<Workload>(objects, 'StatefulSet')];
export const layoverContainer = deployment.spec.template.spec.containers.find((c) => c.name === 'layover')!;
export const layoverEnv = containerEnv(layoverContainer, objects, NAMESPACE, image.env);
export const layoverConfig = configFor(layoverEnv);
export const redisContainer = redis.spec.template.spec.containers.find((c) => c.name === 'redis')!;
