import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REDIRECT_KEY_FILE } from '../../../src/proxy/redirects/signed-url.js';
import { TOKEN_KEY_FILE } from '../../../src/client-auth/token-service/token-key-file.js';
import { SETTINGS } from '../../../src/config/settings.js';
import { kubernetesConfigMap } from '../../../src/dns/coredns.js';
import { configFor, examplePath, imageUid, readText, ROOT, servedStatus, SETTING_ENV_NAMES } from './example-files.js';
import { containerPort, listeners } from './kubernetes-example.js';
import { containerEnv, containersOf, find, manifests, selects, type Secret, type Workload } from './kubernetes-objects.js';
import {
  budget, deployment, image, layoverConfig, layoverContainer, layoverEnv, manifestObjects, NAMESPACE, objects, redis, redisContainer, redisService, service, settings, workloads,
} from './kubernetes-replicas-example.js';

// examples/kubernetes/replicas/ cannot be applied here (no cluster): every reference between its
// objects, to the Secrets its kustomization generates, to the Dockerfile and to Layover's settings is
// checked instead, as for the single-replica example.

/** Names Layover's process reads that are not its settings: the AWS SDK's standard chain. */
function awsSdkReads(name: string): boolean {
  try {
    execFileSync('grep', ['-rqF', '--include=*.js', `"${name}"`, 'node_modules/@aws-sdk/credential-provider-env', 'node_modules/@smithy/core'], { cwd: ROOT });
    return true;
  } catch {
    return false;
  }
}

const SECRET_ENV = new Set(Object.values(SETTINGS).filter((s) => s.secret && s.env !== null).map((s) => s.env!));
const pod = deployment.spec.template.spec;
const mountOf = (path: string): { name: string; mountPath: string; subPath?: string; readOnly?: boolean } | undefined =>
  layoverContainer.volumeMounts?.find((m) => m.mountPath === path) ?? layoverContainer.volumeMounts?.filter((m) => !m.subPath && path.startsWith(`${m.mountPath}/`)).at(0);
const volumeOf = (mountName: string) => pod.volumes!.find((v) => v.name === mountName)!;

describe('examples/kubernetes/replicas: objects and references', () => {
  it('puts every object in the layover Namespace, once per kind and name', () => {
    for (const o of objects.filter((o) => o.kind !== 'Namespace')) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(NAMESPACE);
    const keys = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('holds no Secret in a manifest, and no secret setting or AWS credential as a plain value', () => {
    expect(manifestObjects.filter((o) => o.kind === 'Secret')).toEqual([]);
    for (const w of workloads) {
      for (const c of containersOf(w.spec.template.spec)) {
        for (const e of c.env ?? []) if (SECRET_ENV.has(e.name) || e.name.startsWith('AWS_') || /PASSWORD/.test(e.name)) expect(e.valueFrom?.secretKeyRef, e.name).toBeDefined();
      }
    }
    for (const key of Object.keys(settings.data)) expect(SECRET_ENV.has(key) || key.startsWith('AWS_'), key).toBe(false);
  });

  it('names only Secrets and keys that the kustomization generates (env, envFrom, volumes, subPaths)', () => {
    // containerEnv throws on a missing Secret or key.
    for (const w of workloads) for (const c of containersOf(w.spec.template.spec)) containerEnv(c, objects, NAMESPACE, {});
    for (const w of workloads) {
      const spec = w.spec.template.spec;
      for (const v of spec.volumes ?? []) {
        if (!v.secret) continue;
        const secret = find<Secret>(objects, 'Secret', v.secret.secretName, NAMESPACE);
        for (const c of containersOf(spec)) for (const m of (c.volumeMounts ?? []).filter((m) => m.name === v.name && m.subPath)) expect(Object.keys(secret.stringData), m.mountPath).toContain(m.subPath);
      }
    }
  });

  it('reads only settings Layover has, or AWS variables its SDK reads; they load as a shared index over a bucket', () => {
    const names = [...Object.keys(settings.data), ...Object.keys(layoverEnv).filter((name) => !(name in image.env))];
    for (const name of names) expect(SETTING_ENV_NAMES.has(name) || (name.startsWith('AWS_') && awsSdkReads(name)), name).toBe(true);
    expect(layoverConfig.blobStore).toMatchObject({ kind: 's3', bucket: 'layover-cache', prefix: 'blobs', region: 'eu-west-1' });
    expect(layoverConfig.cacheIndex.kind).toBe('redis');
  });

  it('points CACHE_INDEX at the Redis Service, with the password Redis is started with', () => {
    const url = new URL(layoverEnv.CACHE_INDEX!);
    expect(url.hostname).toBe(`${redisService.metadata.name}.${NAMESPACE}.svc`);
    const port = redisService.spec.ports.find((p) => p.port === Number(url.port || 6379));
    expect(containerPort(redisContainer, port!.targetPort ?? port!.port)?.containerPort).toBe(6379);
    const redisEnv = containerEnv(redisContainer, objects, NAMESPACE, {});
    expect(decodeURIComponent(url.password)).toBe(redisEnv.REDIS_PASSWORD);
    expect(redisEnv.REDIS_PASSWORD!.length).toBeGreaterThanOrEqual(32);
    // Given on stdin, never as an argument `ps` would show.
    expect([...(redisContainer.command ?? []), ...(redisContainer.args ?? [])].join(' ')).not.toContain(redisEnv.REDIS_PASSWORD);
    expect(redisContainer.command?.join(' ')).toMatch(/requirepass %s.*"\$REDIS_PASSWORD" \| exec redis-server - /);
  });

  it('selects each workload\'s own pods; the Service and the budget select Layover\'s only', () => {
    for (const w of workloads) expect(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(true);
    expect(selects(service.spec.selector, deployment.spec.template.metadata.labels)).toBe(true);
    expect(selects(service.spec.selector, redis.spec.template.metadata.labels)).toBe(false);
    expect(selects(redisService.spec.selector, redis.spec.template.metadata.labels)).toBe(true);
    expect(selects(redisService.spec.selector, deployment.spec.template.metadata.labels)).toBe(false);
    expect(selects(budget.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    expect(selects(budget.spec.selector.matchLabels, redis.spec.template.metadata.labels)).toBe(false);
  });

  it('sets resource requests and limits on every container and meets the restricted Pod Security level', () => {
    for (const w of workloads) {
      const spec = w.spec.template.spec;
      for (const c of containersOf(spec)) {
        for (const kind of ['requests', 'limits'] as const) expect(Object.keys(c.resources?.[kind] ?? {}).sort(), `${c.name} ${kind}`).toEqual(['cpu', 'memory']);
        const sc = { ...spec.securityContext, ...c.securityContext };
        expect(sc.runAsNonRoot, c.name).toBe(true);
        expect(sc.runAsUser, c.name).not.toBe(0);
        expect(sc.allowPrivilegeEscalation, c.name).toBe(false);
        expect(sc.capabilities?.drop, c.name).toEqual(['ALL']);
        expect(sc.seccompProfile?.type, c.name).toBe('RuntimeDefault');
        expect(sc.readOnlyRootFilesystem, c.name).toBe(true);
      }
      expect(spec.hostNetwork || spec.hostPID || spec.hostIPC || (spec.volumes ?? []).some((v) => v.hostPath)).toBeFalsy();
      expect(spec.automountServiceAccountToken).toBe(false);
    }
    expect(pod.securityContext?.runAsUser).toBe(imageUid(image.user));
  });
});

describe('examples/kubernetes/replicas: the Layover Deployment', () => {
  let served: Map<string, number>;
  beforeAll(async () => {
    served = await servedStatus([layoverContainer.startupProbe, layoverContainer.readinessProbe, layoverContainer.livenessProbe].map((p) => p!.httpGet!.path));
  });

  it('runs at least three replicas, rolled one new pod at a time with none taken out before', () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(3);
    expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  });

  it('keeps two replicas through voluntary disruptions, and still lets a node drain', () => {
    expect(budget.spec.minAvailable).toBe(2);
    expect(Number(budget.spec.minAvailable)).toBeLessThan(deployment.spec.replicas!);
    expect(budget.spec.unhealthyPodEvictionPolicy).toBe('AlwaysAllow');
  });

  it('spreads its replicas across nodes', () => {
    const byNode = pod.topologySpreadConstraints?.find((t) => t.topologyKey === 'kubernetes.io/hostname');
    expect(byNode).toMatchObject({ maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' });
    expect(selects(byNode!.labelSelector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
  });

  it('probes readiness and startup on /readyz and liveness on /livez, on the HTTP listener, paths Layover serves', () => {
    expect(layoverContainer.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(layoverContainer.startupProbe?.httpGet?.path).toBe('/readyz');
    expect(layoverContainer.livenessProbe?.httpGet?.path).toBe('/livez');
    for (const probe of [layoverContainer.startupProbe, layoverContainer.readinessProbe, layoverContainer.livenessProbe]) {
      expect(containerPort(layoverContainer, probe!.httpGet!.port)?.containerPort).toBe(layoverConfig.listen.http?.port);
      expect(served.get(probe!.httpGet!.path)).toBe(200);
    }
  });

  it('notices a stopping replica within SHUTDOWN_DRAIN, and gives it more than SHUTDOWN_GRACE to stop', () => {
    const readiness = layoverContainer.readinessProbe!;
    expect((readiness.periodSeconds ?? 10) * (readiness.failureThreshold ?? 3) * 1000).toBeLessThan(layoverConfig.timeouts.shutdownDrainMs);
    expect(pod.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(layoverConfig.timeouts.shutdownGraceMs);
  });

  it('has no persistent volume: the data dir is an emptyDir, with room for the fills in flight', () => {
    expect(pod.volumes!.some((v) => v.persistentVolumeClaim)).toBe(false);
    expect(volumeOf(mountOf(layoverConfig.dataDir)!.name).emptyDir).toBeDefined();
    for (const dir of image.volumes) expect(mountOf(dir), dir).toBeDefined();
    expect(layoverContainer.volumeMounts!.filter((m) => !m.readOnly).map((m) => m.mountPath).sort()).toEqual([layoverConfig.dataDir, '/tmp'].sort());
  });

  it('mounts one CA for all replicas, read-only from a Secret, readable by the pod\'s group only', () => {
    const mount = mountOf(join(layoverConfig.caDir, 'ca.key'))!;
    expect(mount.mountPath).toBe(layoverConfig.caDir);
    expect(mount.readOnly).toBe(true);
    const volume = volumeOf(mount.name);
    expect(Object.keys(find<Secret>(objects, 'Secret', volume.secret!.secretName, NAMESPACE).stringData).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(volume.secret!.defaultMode).toBe(0o440);
    expect(pod.securityContext?.fsGroup).toBe(pod.securityContext?.runAsGroup);
  });

  it('shares the docker.proxy redirect key and the client token key: one Secret, read-only, at the files the settings name', () => {
    for (const [path, file] of [[layoverConfig.redirects.keyFile, REDIRECT_KEY_FILE], [layoverConfig.clientAuth.tokenKeyFile, TOKEN_KEY_FILE]] as const) {
      // Not in the data dir: that is each pod's own, and on a shared index Layover makes no key there.
      expect(path.startsWith(`${layoverConfig.dataDir}/`), path).toBe(false);
      const mount = mountOf(path);
      expect(mount?.readOnly, path).toBe(true);
      const volume = volumeOf(mount!.name);
      expect(volume.secret?.secretName).toBe('layover-keys');
      expect(volume.secret?.defaultMode).toBe(0o440);
      const key = mount!.subPath ?? path.slice(mount!.mountPath.length + 1);
      expect(Object.keys(find<Secret>(objects, 'Secret', 'layover-keys', NAMESPACE).stringData)).toContain(key);
      expect(key).toBe(file);
    }
    expect(layoverConfig.cacheIndex.kind).not.toBe('sqlite');
  });

  it('declares a container port for every listener, reachable from the Service', () => {
    for (const l of listeners(layoverConfig)) {
      expect(['0.0.0.0', '::']).toContain(l.host);
      expect(layoverContainer.ports?.some((p) => p.containerPort === l.port), l.name).toBe(true);
    }
    expect(pod.dnsPolicy).toBe('Default');
  });
});

describe('examples/kubernetes/replicas: the Service and the node side', () => {
  it('maps 443, 80 and 3128 onto Layover\'s listeners', () => {
    for (const port of service.spec.ports) expect(containerPort(layoverContainer, port.targetPort ?? port.port), port.name).toBeDefined();
    expect(service.spec.ports.find((p) => p.targetPort === 'https')?.port).toBe(443);
  });

  it('advertises the Service\'s fixed ClusterIP, never a pod address, in DNS answers', () => {
    expect(layoverConfig.advertise).toEqual([service.spec.clusterIP]);
  });

  it('lets the other replicas follow a download at the pod\'s own address and HTTPS port, never the Service\'s', () => {
    // configFor's machine has the address 192.0.2.1: in a pod, its own IP.
    expect(layoverConfig.peerAddress).toEqual({ host: '192.0.2.1', port: containerPort(layoverContainer, 'https')!.containerPort });
    expect(layoverConfig.peerAddress!.host).not.toBe(service.spec.clusterIP);
  });

  it('has the same Service address and names as the single-replica example, so its node setup and CoreDNS block apply unchanged', () => {
    const single = manifests('layover.yaml', 'node-setup.yaml');
    expect(service.spec.clusterIP).toBe(find<typeof service>(single, 'Service', 'layover', NAMESPACE).spec.clusterIP);
    const setup = find<Workload>(single, 'DaemonSet', 'layover-node-setup', NAMESPACE).spec.template.spec.containers.find((c) => c.name === 'node-setup')!;
    const setupConfig = configFor(containerEnv(setup, [...objects, ...single.filter((o) => o.kind !== 'ConfigMap' || o.metadata.name !== 'layover-settings')], NAMESPACE, image.env));
    expect(setupConfig.advertise).toEqual(layoverConfig.advertise);
    expect(setupConfig.registries).toEqual(layoverConfig.registries);
    const corednsFile = readText(examplePath('kubernetes', 'coredns-configmap.yaml'));
    expect(kubernetesConfigMap({ registries: layoverConfig.registries, advertise: layoverConfig.advertise })).toBe(corednsFile);
  });
});
