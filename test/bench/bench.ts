/**
 * The whole end-to-end bench for one test file, in one call: a sandbox (./sandbox.ts), the test CA,
 * dnsmasq as upstream resolver (registry.test and registry-direct.test -> 127.0.0.2), the
 * distribution registry with the test images pushed, and a Layover process intercepting
 * registry.test. One close() undoes it all.
 *
 *   let bench: Bench;
 *   beforeAll(async () => { bench = await startBench(); });
 *   afterAll(() => bench?.close());
 *   const img = bench.images.oci!;
 *   await bench.pullViaLayover(img.ref('registry.test'), join(bench.sandbox.dir, 'out'));
 */
import { join } from 'node:path';
import { DIRECT_HOST, IMAGE_KEYS, type ImageKey, type PushedImages, pushImages } from './images.js';
import { type LayoverProcess, type LayoverProcessOptions, startLayoverProcess } from './layover-process.js';
import { type Registry, startRegistry } from './registry.js';
import { type Resolver, startResolver } from './resolver.js';
import { type ExecResult, type Sandbox, createSandbox } from './sandbox.js';
import { copyToDir, type SkopeoOptions } from './skopeo.js';
import { type TestCa, createTestCa } from './test-ca.js';

export { DIRECT_HOST };
export const INTERCEPTED_HOST = 'registry.test';
export const REGISTRY_ADDRESS = '127.0.0.2';

export interface BenchOptions {
  /** htpasswd users of the upstream registry; pushes use the first. */
  auth?: { htpasswd: Record<string, string> };
  /** Which images to build and push; default all of IMAGE_KEYS, [] for none. */
  images?: readonly ImageKey[];
  seed?: string;
  /** More names for the sandbox's dnsmasq, e.g. `{ 'faulty.test': ['127.0.0.4'] }` for a fixture upstream. */
  extraRecords?: Record<string, string[]>;
  /** Options of the first Layover process, or false to start none yet (see startLayover). */
  layover?: LayoverProcessOptions | false;
  /**
   * Runs after the resolver and before the registry, for peers the registry needs (a token server,
   * an S3 server); returns config.yml sections for the registry (see RegistryOptions.configSections).
   */
  beforeRegistry?: (sandbox: Sandbox, ca: TestCa) => Promise<Record<string, unknown> | void>;
}

export interface Bench {
  readonly sandbox: Sandbox;
  readonly ca: TestCa;
  readonly resolver: Resolver;
  readonly registry: Registry;
  readonly images: PushedImages;
  /** The Layover process started last (undefined before the first). */
  readonly layover: LayoverProcess | undefined;
  /** Starts a Layover process (upstream CA preset); it becomes `layover`. Stop the previous one first. */
  startLayover(options?: LayoverProcessOptions): Promise<LayoverProcess>;
  /** skopeo copy from Layover's name (`registry.test/...`) into `dir:`, trusting Layover's CA. */
  pullViaLayover(ref: string, destDir: string, options?: SkopeoOptions & { all?: boolean }): Promise<ExecResult>;
  /** skopeo copy straight from the registry (`registry-direct.test/...`), bypassing Layover's DNS. */
  pullDirect(ref: string, destDir: string, options?: SkopeoOptions & { all?: boolean }): Promise<ExecResult>;
  close(): Promise<void>;
}

export async function startBench(options: BenchOptions = {}): Promise<Bench> {
  const sandbox = await createSandbox();
  try {
    const ca = await createTestCa(join(sandbox.dir, 'test-ca'));
    const resolver = await startResolver(sandbox, {
      ...options.extraRecords,
      [INTERCEPTED_HOST]: [REGISTRY_ADDRESS],
      [DIRECT_HOST]: [REGISTRY_ADDRESS],
    });
    const configSections = (await options.beforeRegistry?.(sandbox, ca)) ?? undefined;
    const registry = await startRegistry(sandbox, ca, {
      address: REGISTRY_ADDRESS,
      names: [INTERCEPTED_HOST, DIRECT_HOST],
      ...(options.auth ? { auth: options.auth } : {}),
      ...(configSections ? { configSections } : {}),
    });
    const keys = options.images ?? IMAGE_KEYS;
    const images = await pushImages(sandbox, registry, ca.trustDir, { keys, resolvConf: resolver.resolvConf, ...(options.seed ? { seed: options.seed } : {}) });
    registry.clearRequests();

    let layover: LayoverProcess | undefined;
    const startLayover = async (layoverOptions: LayoverProcessOptions = {}): Promise<LayoverProcess> => {
      layover = await startLayoverProcess(sandbox, { upstreamCa: ca.certFile, ...layoverOptions });
      return layover;
    };
    if (options.layover !== false) await startLayover(options.layover ?? {});

    return {
      sandbox,
      ca,
      resolver,
      registry,
      images,
      get layover() {
        return layover;
      },
      startLayover,
      pullViaLayover(ref, destDir, pullOptions = {}) {
        if (!layover && !pullOptions.certDir) throw new Error('pullViaLayover: no Layover process started');
        return copyToDir(sandbox, `docker://${ref}`, destDir, { certDir: layover?.certDir, ...pullOptions });
      },
      pullDirect(ref, destDir, pullOptions = {}) {
        return copyToDir(sandbox, `docker://${ref}`, destDir, { certDir: ca.trustDir, creds: registry.credentials, resolvConf: resolver.resolvConf, ...pullOptions });
      },
      close: () => sandbox.destroy(),
    };
  } catch (error) {
    await sandbox.destroy();
    throw error;
  }
}
