import { configFor, dockerfile } from './example-files.js';
import { containerEnv, find, manifests, ofKind, type ConfigMap, type Container, type Service, type Workload } from './kubernetes-objects.js';

/** examples/kubernetes/ loaded once: its objects, and what the tests derive from them. */

export const NAMESPACE = 'layover';
export const objects = manifests('layover.yaml', 'node-setup.yaml');
export const image = dockerfile();
export const deployment = find<Workload>(objects, 'Deployment', 'layover', NAMESPACE);
export const daemonSet = find<Workload>(objects, 'DaemonSet', 'layover-node-setup', NAMESPACE);
export const service = find<Service>(objects, 'Service', 'layover', NAMESPACE);
export const settings = find<ConfigMap>(objects, 'ConfigMap', 'layover-settings', NAMESPACE);
export const layoverContainer = deployment.spec.template.spec.containers.find((c) => c.name === 'layover')!;
export const layoverEnv = containerEnv(layoverContainer, objects, NAMESPACE, image.env);
export const layoverConfig = configFor(layoverEnv);
export const setupContainer = daemonSet.spec.template.spec.containers.find((c) => c.name === 'node-setup')!;
export const setupEnv = containerEnv(setupContainer, objects, NAMESPACE, image.env);
export const script = String(find<ConfigMap>(objects, 'ConfigMap', 'layover-node-setup', NAMESPACE).data['node-setup.sh']);
export const workloads = [...ofKind<Workload>(objects, 'Deployment'), ...ofKind<Workload>(objects, 'DaemonSet')];

/** A shell variable's value as the script assigns it (`name=value` or `name=${ENV:-value}`). */
export function scriptValue(name: string): string {
  const match = new RegExp(`^${name}=(?:\\$\\{\\w+:-)?'?([^'}\\n]*)'?\\}?$`, 'm').exec(script);
  if (!match) throw new Error(`node-setup.sh assigns no ${name}`);
  return match[1]!;
}

/** The container port a Service's or probe's port reference (name or number) stands for. */
export function containerPort(container: Container, ref: string | number): { containerPort: number; protocol: string } | undefined {
  const port = container.ports?.find((p) => (typeof ref === 'string' ? p.name === ref : p.containerPort === ref));
  return port && { containerPort: port.containerPort, protocol: port.protocol ?? 'TCP' };
}

/** Layover's listeners under a configuration: what must be a container port. */
export function listeners(config: ReturnType<typeof configFor>): { name: string; port: number; protocol: string; host: string }[] {
  const { https, http, dns, proxy } = config.listen;
  return [
    { name: 'https', ...https, protocol: 'TCP' },
    ...(http ? [{ name: 'http', ...http, protocol: 'TCP' }] : []),
    ...(proxy ? [{ name: 'proxy', ...proxy, protocol: 'TCP' }] : []),
    ...(dns ? [{ name: 'dns', ...dns, protocol: 'UDP' }, { name: 'dns-tcp', ...dns, protocol: 'TCP' }] : []),
    ...config.registryPorts.map((port) => ({ name: `registry-${port}`, host: https.host, port, protocol: 'TCP' })),
  ];
}
