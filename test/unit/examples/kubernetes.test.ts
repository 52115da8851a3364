import { beforeAll, describe, expect, it } from 'vitest';
import { examplePath, imageUid, readText, servedStatus, SETTING_ENV_NAMES, yamlDocuments } from './example-files.js';
import { deployment, daemonSet, image, layoverConfig, layoverContainer, layoverEnv, containerPort, listeners, NAMESPACE, objects, service, settings, setupEnv, workloads } from './kubernetes-example.js';
import { bytesOf, containersOf, find, ofKind, selects, type ConfigMap, type KubeObject, type PersistentVolumeClaim } from './kubernetes-objects.js';

// The manifests of examples/kubernetes/ cannot be applied here (no cluster): every reference
// between them, and to the Dockerfile and Layover's settings, is checked instead.

describe('examples/kubernetes: objects and names', () => {
  it('puts every object in the layover Namespace, which exists', () => {
    find(objects, 'Namespace', NAMESPACE);
    for (const o of objects.filter((o) => o.kind !== 'Namespace')) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(NAMESPACE);
  });

  it('has no two objects of one kind with one name', () => {
    const keys = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('admits hostPath volumes only where the Namespace enforces the privileged Pod Security level', () => {
    const namespace = find<KubeObject>(objects, 'Namespace', NAMESPACE);
    const usesHostPath = workloads.some((w) => (w.spec.template.spec.volumes ?? []).some((v) => v.hostPath));
    if (usesHostPath) expect(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
  });

  it('gives ConfigMap data and env values as strings (YAML 1.1 would read a bare off or 443 otherwise)', () => {
    for (const map of ofKind<ConfigMap>(objects, 'ConfigMap')) {
      for (const [key, value] of Object.entries(map.data)) expect(typeof value, `${map.metadata.name}.${key}`).toBe('string');
    }
    for (const w of workloads) {
      for (const c of containersOf(w.spec.template.spec)) for (const e of c.env ?? []) expect(typeof e.value, `${c.name} ${e.name}`).toBe('string');
    }
  });

  it('selects each workload\'s own pods, and the Service selects Layover\'s pods only', () => {
    for (const w of workloads) expect(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(true);
    expect(selects(service.spec.selector, deployment.spec.template.metadata.labels)).toBe(true);
    expect(selects(service.spec.selector, daemonSet.spec.template.metadata.labels)).toBe(false);
    expect(selects(deployment.spec.selector.matchLabels, daemonSet.spec.template.metadata.labels)).toBe(false);
    expect(selects(daemonSet.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(false);
  });

  it('names only ConfigMaps that exist, and only keys they hold', () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      for (const c of containersOf(pod)) for (const from of c.envFrom ?? []) find(objects, 'ConfigMap', from.configMapRef!.name, NAMESPACE);
      for (const v of pod.volumes ?? []) {
        if (!v.configMap) continue;
        const map = find<ConfigMap>(objects, 'ConfigMap', v.configMap.name, NAMESPACE);
        for (const item of v.configMap.items ?? []) expect(Object.keys(map.data)).toContain(item.key);
      }
    }
  });

  it('mounts only declared volumes, declares only mounted ones, and claims only PVCs that exist', () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      const declared = (pod.volumes ?? []).map((v) => v.name);
      const mounted = containersOf(pod).flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name));
      expect(new Set(declared).size, w.metadata.name).toBe(declared.length);
      for (const name of mounted) expect(declared, w.metadata.name).toContain(name);
      for (const name of declared) expect(mounted, w.metadata.name).toContain(name);
      for (const v of pod.volumes ?? []) if (v.persistentVolumeClaim) find(objects, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName, NAMESPACE);
    }
  });

  it('uses one image, Layover\'s, which kind.sh builds and loads', () => {
    const images = new Set(workloads.flatMap((w) => containersOf(w.spec.template.spec).map((c) => c.image)));
    expect([...images]).toEqual(['layover:local']);
    expect(readText(examplePath('kubernetes', 'kind.sh'))).toMatch(/^image=layover:local$/m);
    for (const w of workloads) for (const c of containersOf(w.spec.template.spec)) expect(c.imagePullPolicy).toBe('IfNotPresent');
  });

  it('sets resource requests and limits on every container', () => {
    for (const w of workloads) {
      for (const c of containersOf(w.spec.template.spec)) {
        for (const kind of ['requests', 'limits'] as const) {
          expect(Object.keys(c.resources?.[kind] ?? {}).sort(), `${c.name} ${kind}`).toEqual(['cpu', 'memory']);
        }
      }
    }
  });
});

describe('examples/kubernetes: the Layover Deployment', () => {
  let served: Map<string, number>;
  beforeAll(async () => {
    const paths = [layoverContainer.startupProbe, layoverContainer.readinessProbe, layoverContainer.livenessProbe].flatMap((p) => (p?.httpGet ? [p.httpGet.path] : []));
    served = await servedStatus([...paths, new URL(setupEnv.LAYOVER_CA_URL!).pathname]);
  });

  it('reads only settings Layover has, and they load', () => {
    for (const name of [...Object.keys(settings.data), ...(layoverContainer.env ?? []).map((e) => e.name)]) expect(SETTING_ENV_NAMES).toContain(name);
    expect(layoverConfig.cacheMaxSize).toBeGreaterThan(0);
  });

  it('runs the image\'s `layover serve`', () => {
    expect(layoverContainer.command).toBeUndefined();
    expect(image.entrypoint.at(-1)).toMatch(/\/cli\/main\.js$/);
    expect(layoverContainer.args).toEqual(['serve']);
  });

  it('declares a container port, on all addresses, for every listener of its settings, and no other', () => {
    const expected = listeners(layoverConfig);
    for (const l of expected) {
      expect(['0.0.0.0', '::'], `${l.name} must be reachable from the Service`).toContain(l.host);
      expect(layoverContainer.ports?.some((p) => p.containerPort === l.port && (p.protocol ?? 'TCP') === l.protocol), `${l.name} ${l.port}/${l.protocol}`).toBe(true);
    }
    for (const p of layoverContainer.ports ?? []) {
      expect(expected.some((l) => l.port === p.containerPort && l.protocol === (p.protocol ?? 'TCP')), `containerPort ${p.containerPort}`).toBe(true);
    }
    expect(containerPort(layoverContainer, 'https')?.containerPort).toBe(layoverConfig.listen.https.port);
    expect(containerPort(layoverContainer, 'http')?.containerPort).toBe(layoverConfig.listen.http?.port);
    expect(containerPort(layoverContainer, 'proxy')?.containerPort).toBe(layoverConfig.listen.proxy?.port);
  });

  it('probes a path Layover serves, on its plain HTTP listener', () => {
    const probes = [layoverContainer.startupProbe, layoverContainer.readinessProbe, layoverContainer.livenessProbe];
    expect(probes.every((p) => p?.httpGet)).toBe(true);
    for (const probe of probes) {
      const { path, port } = probe!.httpGet!;
      expect(containerPort(layoverContainer, port)?.containerPort).toBe(layoverConfig.listen.http?.port);
      expect(served.get(path), path).toBe(200);
    }
  });

  it('mounts the data and CA directories of its settings on persistent volumes, and the image\'s volumes', () => {
    const pod = deployment.spec.template.spec;
    const claimAt = (dir: string): string | undefined => {
      const mount = layoverContainer.volumeMounts?.find((m) => dir === m.mountPath || dir.startsWith(`${m.mountPath}/`));
      return pod.volumes?.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName;
    };
    expect(claimAt(layoverConfig.dataDir)).toBeDefined();
    expect(claimAt(layoverConfig.caDir)).toBeDefined();
    for (const dir of image.volumes) expect(claimAt(dir), dir).toBeDefined();
  });

  it('has a cache volume larger than CACHE_MAX_SIZE', () => {
    const mount = layoverContainer.volumeMounts!.find((m) => layoverConfig.dataDir.startsWith(m.mountPath))!;
    const claim = deployment.spec.template.spec.volumes!.find((v) => v.name === mount.name)!.persistentVolumeClaim!.claimName;
    const pvc = find<PersistentVolumeClaim>(objects, 'PersistentVolumeClaim', claim, NAMESPACE);
    expect(bytesOf(pvc.spec.resources.requests.storage)).toBeGreaterThan(layoverConfig.cacheMaxSize);
  });

  it('runs one pod at a time on its ReadWriteOnce volumes', () => {
    const claims = (deployment.spec.template.spec.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
    const rwo = claims.some((c) => find<PersistentVolumeClaim>(objects, 'PersistentVolumeClaim', c, NAMESPACE).spec.accessModes.includes('ReadWriteOnce'));
    expect(rwo).toBe(true);
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy?.type).toBe('Recreate');
  });

  it('meets the restricted Pod Security level, with a read-only root and writable mounts for all it writes', () => {
    const pod = deployment.spec.template.spec;
    const sc = { ...pod.securityContext, ...layoverContainer.securityContext };
    expect(sc.runAsNonRoot).toBe(true);
    expect(sc.runAsUser).toBe(imageUid(image.user));
    expect(sc.runAsUser).not.toBe(0);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.privileged).toBeFalsy();
    expect(sc.capabilities?.drop).toEqual(['ALL']);
    expect(sc.capabilities?.add ?? []).toEqual([]);
    expect(sc.seccompProfile?.type).toBe('RuntimeDefault');
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(pod.hostNetwork || pod.hostPID || pod.hostIPC || (pod.volumes ?? []).some((v) => v.hostPath)).toBeFalsy();
    expect(pod.automountServiceAccountToken).toBe(false);
    // Without NET_BIND_SERVICE, only ports from 1024 up can be bound.
    for (const l of listeners(layoverConfig)) expect(l.port, l.name).toBeGreaterThanOrEqual(1024);
    const writable = (layoverContainer.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath);
    expect(writable).toContain('/tmp');
  });

  it('resolves upstream registries outside the cluster DNS, which answers them with Layover itself', () => {
    const pod = deployment.spec.template.spec;
    expect(pod.dnsPolicy === 'Default' || layoverEnv.LAYOVER_UPSTREAM_DNS !== undefined).toBe(true);
  });

  it('takes a stopping pod out of the Service on /readyz within the drain, and restarts it only on /livez', () => {
    expect(layoverContainer.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(layoverContainer.startupProbe?.httpGet?.path).toBe('/readyz');
    expect(layoverContainer.livenessProbe?.httpGet?.path).toBe('/livez');
    // The kubelet notices /readyz turning 503 after at most period × failureThreshold: within SHUTDOWN_DRAIN,
    // Layover still accepts the connections that arrive before the endpoints are updated.
    const readiness = layoverContainer.readinessProbe!;
    expect((readiness.periodSeconds ?? 10) * (readiness.failureThreshold ?? 3) * 1000).toBeLessThan(layoverConfig.timeouts.shutdownDrainMs);
  });

  it('gives Layover more time to stop than its own shutdown grace', () => {
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(layoverConfig.timeouts.shutdownGraceMs);
  });
});

describe('examples/kubernetes: the Service', () => {
  it('maps each port onto a container port of every pod it selects', () => {
    const selected = workloads.filter((w) => selects(service.spec.selector, w.spec.template.metadata.labels));
    expect(selected.length).toBeGreaterThan(0);
    for (const w of selected) {
      for (const port of service.spec.ports) {
        const targets = w.spec.template.spec.containers.map((c) => containerPort(c, port.targetPort ?? port.port)).filter(Boolean);
        expect(targets, `${port.name}`).toHaveLength(1);
        expect(targets[0]!.protocol).toBe(port.protocol ?? 'TCP');
      }
    }
  });

  it('offers the HTTPS listener on 443, where clients of the intercepted names connect', () => {
    const https = service.spec.ports.find((p) => containerPort(layoverContainer, p.targetPort ?? p.port)?.containerPort === layoverConfig.listen.https.port);
    expect(https?.port).toBe(443);
  });

  it('has the fixed ClusterIP that LAYOVER_ADVERTISE gives, inside the kind cluster\'s Service range', () => {
    expect(layoverConfig.advertise).toEqual([service.spec.clusterIP]);
    const kind = yamlDocuments(examplePath('kubernetes', 'kind-config.yaml'))[0] as { networking: { serviceSubnet: string } };
    const [network, bits] = kind.networking.serviceSubnet.split('/');
    const toInt = (ip: string): number => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
    const mask = 2 ** 32 - 2 ** (32 - Number(bits));
    const inRange = (toInt(service.spec.clusterIP!) & mask) >>> 0 === (toInt(network!) & mask) >>> 0;
    expect(inRange).toBe(true);
  });
});
