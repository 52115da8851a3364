import { examplePath, yamlDocuments } from './example-files.js';

/** The parts of Kubernetes objects the example tests look at. */

export type Labels = Record<string, string>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Labels;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

export interface EnvVar {
  name: string;
  value?: unknown;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}

export interface Probe {
  httpGet?: { path: string; port: string | number };
  exec?: { command: string[] };
  periodSeconds?: number;
  failureThreshold?: number;
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type: string };
  fsGroup?: number;
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
}

export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  configMap?: { name: string; items?: { key: string; path: string }[] };
  hostPath?: { path: string; type?: string };
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
  emptyDir?: Record<string, unknown>;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  dnsPolicy?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  nodeSelector?: Labels;
  tolerations?: { operator?: string; key?: string; effect?: string }[];
  topologySpreadConstraints?: { maxSkew: number; topologyKey: string; whenUnsatisfiable: string; labelSelector: { matchLabels: Labels } }[];
}

export interface Workload extends KubeObject {
  spec: {
    replicas?: number;
    strategy?: { type: string; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
    selector: { matchLabels: Labels };
    template: { metadata: { labels: Labels }; spec: PodSpec };
  };
}

export interface Service extends KubeObject {
  spec: {
    type?: string;
    clusterIP?: string;
    selector: Labels;
    ports: { name?: string; port: number; targetPort?: string | number; protocol?: string }[];
  };
}

export interface PodDisruptionBudget extends KubeObject {
  spec: { minAvailable?: number | string; maxUnavailable?: number | string; unhealthyPodEvictionPolicy?: string; selector: { matchLabels: Labels } };
}

export interface ConfigMap extends KubeObject {
  data: Record<string, unknown>;
}

/** Secrets are not part of the examples' files but made by kustomize's secretGenerator: `stringData` holds what it reads. */
export interface Secret extends KubeObject {
  stringData: Record<string, string>;
}

export interface PersistentVolumeClaim extends KubeObject {
  spec: { accessModes: string[]; resources: { requests: { storage: string } } };
}

/** Every object of the example's manifests, by file name under examples/kubernetes/. */
export function manifests(...files: string[]): KubeObject[] {
  return files.flatMap((file) => yamlDocuments(examplePath('kubernetes', file)) as KubeObject[]);
}

export function find<T extends KubeObject>(objects: readonly KubeObject[], kind: string, name: string, namespace?: string): T {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace ?? '*'}/${name}, found ${found.length}`);
  return found[0] as T;
}

export const ofKind = <T extends KubeObject>(objects: readonly KubeObject[], kind: string): T[] => objects.filter((o) => o.kind === kind) as T[];

/** Whether a label selector (matchLabels or a Service's selector) selects these labels. */
export const selects = (selector: Labels, labels: Labels): boolean => Object.entries(selector).every(([key, value]) => labels[key] === value);

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes quantity of bytes (`40Gi`, `500M`) as a number. */
export function bytesOf(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMGT]i|[kMGT])?$/.exec(quantity);
  if (!match) throw new Error(`not a quantity of bytes: ${quantity}`);
  const unit = match[2];
  return Number(match[1]) * (unit === undefined ? 1 : (BINARY[unit] ?? DECIMAL[unit]!));
}

/** All containers of a pod, init containers included. */
export const containersOf = (pod: PodSpec): Container[] => [...(pod.initContainers ?? []), ...pod.containers];

/**
 * A container's environment as the process sees it: the image's ENV, then each envFrom ConfigMap or
 * Secret, then `env` (later wins, as in the kubelet). A reference to a missing object or key throws.
 */
export function containerEnv(container: Container, objects: readonly KubeObject[], namespace: string, imageEnv: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...imageEnv };
  for (const source of container.envFrom ?? []) {
    const data = source.configMapRef ? find<ConfigMap>(objects, 'ConfigMap', source.configMapRef.name, namespace).data : find<Secret>(objects, 'Secret', source.secretRef!.name, namespace).stringData;
    for (const [key, value] of Object.entries(data)) env[key] = String(value);
  }
  for (const { name, value, valueFrom } of container.env ?? []) env[name] = valueFrom ? referencedValue(valueFrom, objects, namespace) : String(value);
  return env;
}

function referencedValue(from: NonNullable<EnvVar['valueFrom']>, objects: readonly KubeObject[], namespace: string): string {
  const [data, ref] = from.secretKeyRef
    ? [find<Secret>(objects, 'Secret', from.secretKeyRef.name, namespace).stringData, from.secretKeyRef]
    : [find<ConfigMap>(objects, 'ConfigMap', from.configMapKeyRef!.name, namespace).data, from.configMapKeyRef!];
  if (!(ref.key in data)) throw new Error(`${ref.name} has no key ${ref.key}`);
  return String(data[ref.key]);
}
