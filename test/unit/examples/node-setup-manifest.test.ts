import { describe, expect, it } from 'vitest';
import { configFor, SETTING_ENV_NAMES, urlPort } from './example-files.js';
import { containerPort, daemonSet, image, layoverConfig, layoverContainer, objects, script, scriptValue, setupContainer, setupEnv } from './kubernetes-example.js';
import { find, type Service } from './kubernetes-objects.js';

// The node setup DaemonSet of examples/kubernetes/node-setup.yaml against its script, Layover's
// Service and settings. node-setup.test.ts runs the script itself.

describe('examples/kubernetes: the node setup DaemonSet', () => {
  const pod = daemonSet.spec.template.spec;
  const hostRoot = setupEnv.HOST_ROOT!;

  it('sets only Layover settings and variables the script reads, and every variable the script requires', () => {
    for (const e of setupContainer.env ?? []) {
      const read = new RegExp(`\\$\\{?${e.name}\\b`).test(script);
      expect(SETTING_ENV_NAMES.has(e.name) || read, e.name).toBe(true);
    }
    for (const [, name] of script.matchAll(/\$\{(\w+):\?/g)) expect(Object.keys(setupEnv)).toContain(name);
  });

  it('shares Layover\'s settings, so `layover hosts` there prints the names and address Layover serves', () => {
    const setupConfig = configFor(setupEnv);
    expect(setupConfig.registries).toEqual(layoverConfig.registries);
    expect(setupConfig.advertise).toEqual(layoverConfig.advertise);
  });

  it('runs the script from its ConfigMap, and the same script with `remove` before it stops', () => {
    const volume = pod.volumes!.find((v) => v.configMap?.name === 'layover-node-setup')!;
    const item = volume.configMap!.items!.find((i) => i.key === 'node-setup.sh')!;
    const mount = setupContainer.volumeMounts!.find((m) => m.name === volume.name)!;
    const path = `${mount.mountPath}/${item.path}`;
    expect(setupContainer.command).toEqual(['bash', path]);
    expect(setupContainer.lifecycle?.preStop?.exec?.command).toEqual(['bash', path, 'remove']);
    expect(script).toMatch(/^\s+remove\) /m);
  });

  it('runs `layover hosts` with the image\'s own CLI', () => {
    expect(scriptValue('layover_cli')).toBe(image.entrypoint.at(-1));
  });

  it('fetches the CA from the Service, on a port that reaches Layover\'s HTTP listener', () => {
    const url = new URL(setupEnv.LAYOVER_CA_URL!);
    expect(url.protocol).toBe('http:');
    const [name, namespace, svc] = url.hostname.split('.');
    expect(svc).toBe('svc');
    const target = find<Service>(objects, 'Service', name!, namespace);
    const port = target.spec.ports.find((p) => p.port === urlPort(url));
    expect(port).toBeDefined();
    expect(containerPort(layoverContainer, port!.targetPort ?? port!.port)?.containerPort).toBe(layoverConfig.listen.http?.port);
  });

  it('mounts exactly the node paths the script writes, each at HOST_ROOT plus its node path', () => {
    const hostPaths = pod.volumes!.filter((v) => v.hostPath);
    expect(hostPaths.map((v) => v.hostPath!.path).sort()).toEqual(['/etc/containerd/certs.d', '/etc/hosts']);
    for (const v of hostPaths) {
      const mount = setupContainer.volumeMounts!.find((m) => m.name === v.name)!;
      expect(mount.mountPath).toBe(`${hostRoot}${v.hostPath!.path}`);
      expect(mount.readOnly).toBeFalsy();
    }
    const written = [scriptValue('hosts_file'), scriptValue('certs_dir')].map((p) => p.replace('$host_root', ''));
    expect(written.sort()).toEqual(['/etc/containerd/certs.d', '/etc/hosts']);
    expect(scriptValue('host_root')).toBe(hostRoot);
    // hosts.toml names the CA by the node's path, which is the certs.d hostPath.
    expect(scriptValue('node_certs_dir')).toBe('/etc/containerd/certs.d');
  });

  it('is ready once the script\'s block is in the node\'s /etc/hosts', () => {
    const command = setupContainer.readinessProbe?.exec?.command;
    expect(command).toEqual(['grep', '-qxF', scriptValue('begin'), `${hostRoot}/etc/hosts`]);
  });

  it('is not privileged: root for the node\'s files, no capability, read-only root, no host namespaces', () => {
    const sc = { ...pod.securityContext, ...setupContainer.securityContext };
    expect(sc.privileged).toBeFalsy();
    expect(sc.runAsUser).toBe(0);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.capabilities?.drop).toEqual(['ALL']);
    expect(sc.capabilities?.add ?? []).toEqual([]);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.seccompProfile?.type).toBe('RuntimeDefault');
    expect(pod.hostNetwork || pod.hostPID || pod.hostIPC).toBeFalsy();
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('runs on every Linux node, control planes included', () => {
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
  });
});
