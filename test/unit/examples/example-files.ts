import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../../src/config/load-config.js';
import type { LayoverConfig } from '../../../src/config/layover-config.js';
import { SETTINGS } from '../../../src/config/settings.js';

/** Reading examples/ and the files they must agree with (Dockerfile, settings). */

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const EXAMPLES = join(ROOT, 'examples');
export const examplePath = (...parts: string[]): string => join(EXAMPLES, ...parts);
export const readText = (path: string): string => readFileSync(path, 'utf8');

/** Every file under `dir`, recursively, as absolute paths. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

/**
 * The documents of a YAML file. YAML 1.1 by default, as Kubernetes and compose read it (`off`, `yes`
 * and `0555` mean something else there than in 1.2). Any error or warning throws.
 */
export function yamlDocuments(path: string, version: '1.1' | '1.2' = '1.1'): unknown[] {
  const docs = parseAllDocuments(readText(path), { version, uniqueKeys: true });
  if (!Array.isArray(docs)) return [];
  for (const doc of docs) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${path}: ${problems.map((p) => p.message).join('\n')}`);
  }
  return docs.map((doc) => doc.toJS() as unknown).filter((value) => value !== null && value !== undefined);
}

/** Environment variable names Layover reads. */
export const SETTING_ENV_NAMES: ReadonlySet<string> = new Set(Object.values(SETTINGS).flatMap((s) => (s.env === null ? [] : [s.env])));

/** The configuration Layover starts with under `env`; machine defaults fixed so nothing depends on this host. */
export function configFor(env: Record<string, string>): LayoverConfig {
  return loadConfig({ env, flags: {}, machine: { advertise: () => ['192.0.2.1'], upstreamDns: () => [{ host: '127.0.0.1', port: 9 }] } });
}

export interface Dockerfile {
  env: Record<string, string>;
  /** `53/udp`, `80/tcp`: protocol always spelled out. */
  expose: string[];
  user: string;
  volumes: string[];
  entrypoint: string[];
  cmd: string[];
  /** The URL the HEALTHCHECK command fetches. */
  healthcheckUrl: URL | null;
}

/** The final stage of the repository's Dockerfile: what the image that runs carries. */
export function dockerfile(): Dockerfile {
  const text = readText(join(ROOT, 'Dockerfile')).replace(/\\\n/g, ' ');
  const lines = text.split('\n').map((line) => line.trim());
  const stage = lines.slice(lines.findLastIndex((line) => /^FROM\s/i.test(line)));
  const result: Dockerfile = { env: {}, expose: [], user: 'root', volumes: [], entrypoint: [], cmd: [], healthcheckUrl: null };
  for (const line of stage) {
    const [, instruction = '', rest = ''] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    switch (instruction.toUpperCase()) {
      case 'ENV':
        for (const [, key, value] of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) result.env[key!] = value!.replace(/^"|"$/g, '');
        break;
      case 'EXPOSE':
        result.expose.push(...rest.split(/\s+/).map((port) => (port.includes('/') ? port : `${port}/tcp`)));
        break;
      case 'USER':
        result.user = rest;
        break;
      case 'VOLUME':
        result.volumes.push(...(JSON.parse(rest) as string[]));
        break;
      case 'ENTRYPOINT':
        result.entrypoint = JSON.parse(rest) as string[];
        break;
      case 'CMD':
        result.cmd = JSON.parse(rest) as string[];
        break;
      case 'HEALTHCHECK': {
        const url = /(https?:\/\/[^'"\s)]+)/.exec(rest)?.[1];
        result.healthcheckUrl = url ? new URL(url) : null;
        break;
      }
    }
  }
  return result;
}

/** The numeric uid of the image's USER: the node images' `node` is 1000. */
export function imageUid(user: string): number {
  const known: Record<string, number> = { root: 0, node: 1000 };
  const uid = /^\d+$/.test(user) ? Number(user) : known[user];
  if (uid === undefined) throw new Error(`unknown uid for the Dockerfile's USER ${user}`);
  return uid;
}

/** The port of a URL, with the scheme's default. */
export const urlPort = (url: URL): number => (url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80);

/** Whether a program is on PATH. */
export function hasProgram(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The paths Layover's plain HTTP listener answers with 200, asked of a real Layover. */
export async function servedStatus(paths: readonly string[]): Promise<Map<string, number>> {
  const { startLayover } = await import('../../helpers/start-layover.js');
  const layover = await startLayover();
  try {
    const port = layover.addresses.http!.port;
    const statuses = new Map<string, number>();
    for (const path of paths) statuses.set(path, (await fetch(`http://127.0.0.1:${port}${path}`)).status);
    return statuses;
  } finally {
    await layover.close();
  }
}
