import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { configFor, dockerfile, examplePath, servedStatus, SETTING_ENV_NAMES, urlPort, yamlDocuments } from './example-files.js';

// examples/compose/compose.yaml cannot run here (no Docker engine): every reference in it, and to
// the Dockerfile and Layover's settings, is checked instead.

interface ComposeService {
  build?: string | { context: string };
  image?: string;
  user?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  networks?: string[] | Record<string, { ipv4_address?: string } | null>;
  dns?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
}

interface Compose {
  services: Record<string, ComposeService>;
  networks?: Record<string, { ipam?: { config?: { subnet: string }[] } } | null>;
  volumes?: Record<string, unknown>;
}

const COMPOSE_DIR = examplePath('compose');
const compose = yamlDocuments(join(COMPOSE_DIR, 'compose.yaml'))[0] as Compose;
const services = compose.services;
const image = dockerfile();

/** Compose's interpolation with an empty environment: `${VAR:-default}`, `${VAR:?error}`, `${VAR}`, `$$`. */
function interpolate(text: string, env: Record<string, string> = {}): string {
  return text.replace(/\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}/g, (whole, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (whole === '$$') return '$';
    const value = env[name!];
    if (value !== undefined && value !== '') return value;
    if (op === '?') throw new Error(`${name} must be set: ${arg}`);
    return op === '-' ? arg! : '';
  });
}

const networkNames = (s: ComposeService): string[] => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}));
const addressOf = (s: ComposeService): string | undefined => (Array.isArray(s.networks) ? undefined : Object.values(s.networks ?? {}).find((n) => n?.ipv4_address)?.ipv4_address);
/** Named volumes a service mounts, with their targets. */
const namedMounts = (s: ComposeService): { source: string; target: string; readOnly: boolean }[] =>
  (s.volumes ?? []).map((v) => v.split(':')).filter(([source]) => !source!.startsWith('.') && !source!.startsWith('/')).map(([source, target, mode]) => ({ source: source!, target: target!, readOnly: mode === 'ro' }));

/** Services that run the repository's image, i.e. Layover. */
const layoverServices = Object.entries(services).filter(([, s]) => s.build !== undefined);
const [layoverName, layover] = layoverServices[0]!;
const layoverEnv = { ...image.env, ...Object.fromEntries(Object.entries(layover.environment ?? {}).map(([k, v]) => [k, interpolate(v)])) };
const config = configFor(layoverEnv);

/** Layover's listeners under its settings, as `port/protocol`. */
const listenerPorts = (): { name: string; spec: string }[] => {
  const { https, http, dns, proxy } = config.listen;
  return [
    { name: 'https', spec: `${https.port}/tcp` },
    ...(http ? [{ name: 'http', spec: `${http.port}/tcp` }] : []),
    ...(dns ? [{ name: 'dns', spec: `${dns.port}/udp` }, { name: 'dns', spec: `${dns.port}/tcp` }] : []),
    ...(proxy ? [{ name: 'proxy', spec: `${proxy.port}/tcp` }] : []),
  ];
};

/** The Dockerfile lacks these in EXPOSE (reported); when it is fixed, this test fails until the entry goes. */
describe('examples/compose/compose.yaml', () => {
  let served: Map<string, number>;
  const caUrl = new URL(services['fetch-ca']!.command!.find((arg) => arg.startsWith('http'))!);
  beforeAll(async () => {
    served = await servedStatus([caUrl.pathname, image.healthcheckUrl!.pathname]);
  });

  it('builds exactly one service from the repository\'s Dockerfile, tagged as the Kubernetes example\'s image', () => {
    expect(layoverServices).toHaveLength(1);
    const context = typeof layover.build === 'string' ? layover.build : layover.build!.context;
    expect(existsSync(join(resolve(COMPOSE_DIR, context), 'Dockerfile'))).toBe(true);
    expect(layover.image).toBe('layover:local');
  });

  it('depends only on services that exist, with conditions they can meet', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(Object.keys(services), `${name} depends on ${dependency}`).toContain(dependency);
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition);
        const target = services[dependency]!;
        // Healthy needs a health check: its own or the image's HEALTHCHECK.
        if (condition === 'service_healthy') expect(target.healthcheck !== undefined || (target.build !== undefined && image.healthcheckUrl !== null), dependency).toBe(true);
      }
    }
  });

  it('has the image\'s HEALTHCHECK hit Layover\'s HTTP listener on a path it serves', () => {
    expect(urlPort(image.healthcheckUrl!)).toBe(config.listen.http?.port);
    expect(served.get(image.healthcheckUrl!.pathname)).toBe(200);
  });

  it('joins only declared networks, at addresses inside their subnets, each address once', () => {
    const addresses: string[] = [];
    for (const [name, s] of Object.entries(services)) {
      for (const network of networkNames(s)) expect(Object.keys(compose.networks ?? {}), name).toContain(network);
      const address = addressOf(s);
      if (!address) continue;
      addresses.push(address);
      const subnet = compose.networks![networkNames(s)[0]!]!.ipam!.config![0]!.subnet;
      const [base, bits] = subnet.split('/');
      const prefix = base!.split('.').slice(0, Number(bits) / 8).join('.');
      expect(address.startsWith(`${prefix}.`), `${address} in ${subnet}`).toBe(true);
    }
    expect(new Set(addresses).size).toBe(addresses.length);
  });

  it('mounts only declared named volumes, and declares only mounted ones', () => {
    const mounted = Object.values(services).flatMap((s) => namedMounts(s).map((m) => m.source));
    expect([...new Set(mounted)].sort()).toEqual(Object.keys(compose.volumes ?? {}).sort());
  });

  it('sets only settings Layover has, and they load', () => {
    for (const name of Object.keys(layover.environment ?? {})) expect(SETTING_ENV_NAMES).toContain(name);
    expect(config.registries.length).toBeGreaterThan(0);
  });

  it('keeps the image\'s data and CA volumes on named volumes; all else read-only but /tmp', () => {
    const targets = namedMounts(layover).map((m) => m.target);
    expect(targets.sort()).toEqual([...image.volumes].sort());
    expect(targets).toContain(config.dataDir);
    expect(targets).toContain(config.caDir);
    expect(layover.read_only).toBe(true);
    expect(layover.tmpfs).toEqual(['/tmp']);
    expect(layover.cap_drop).toEqual(['ALL']);
  });

  it('advertises Layover\'s own address on the network, which the clients use as their DNS server', () => {
    expect(config.advertise).toEqual([addressOf(layover)]);
    expect(config.listen.dns?.port).toBe(53);
    for (const [name, s] of Object.entries(services)) {
      for (const dns of s.dns ?? []) {
        expect(dns, name).toBe(addressOf(layover));
        expect(networkNames(s).some((n) => networkNames(layover).includes(n)), name).toBe(true);
      }
    }
  });

  it('publishes every listener of Layover\'s settings, and nothing else', () => {
    const published = (layover.ports ?? []).map((p) => {
      const spec = interpolate(p).split(':').at(-1)!;
      return spec.includes('/') ? spec : `${spec}/tcp`;
    });
    expect(published.sort()).toEqual(listenerPorts().map((l) => l.spec).sort());
  });

  it('matches the Dockerfile\'s EXPOSE', () => {
    const missing = listenerPorts().map((l) => l.spec).filter((spec) => !image.expose.includes(spec));
    expect(missing).toEqual([]);
  });

  it('fetches the CA from the Layover service\'s HTTP listener, into the volume the puller reads', () => {
    const fetcher = services['fetch-ca']!;
    expect(caUrl.protocol).toBe('http:');
    expect(caUrl.hostname).toBe(layoverName);
    expect(urlPort(caUrl)).toBe(config.listen.http?.port);
    expect(served.get(caUrl.pathname)).toBe(200);
    expect(fetcher.depends_on?.[layoverName]?.condition).toBe('service_healthy');
    expect(networkNames(fetcher).some((n) => networkNames(layover).includes(n))).toBe(true);

    const output = fetcher.command![fetcher.command!.indexOf('-o') + 1]!;
    expect(output).toMatch(/\.crt$/);
    const written = namedMounts(fetcher).find((m) => output.startsWith(`${m.target}/`))!;
    expect(written.readOnly).toBe(false);

    const puller = services.puller!;
    const certDir = puller.command![puller.command!.indexOf('--src-cert-dir') + 1]!;
    expect(namedMounts(puller)).toContainEqual({ source: written.source, target: certDir, readOnly: true });
    expect(`${certDir}/`).toBe(`${output.slice(0, output.lastIndexOf('/'))}/`);
    expect(puller.depends_on?.['fetch-ca']?.condition).toBe('service_completed_successfully');
  });

  it('has the puller fetch from a registry Layover intercepts', () => {
    const puller = services.puller!;
    const source = puller.command!.find((arg) => arg.startsWith('docker://'))!;
    const host = source.slice('docker://'.length).split('/')[0]!;
    expect(config.registries).toContain(host);
  });
});
