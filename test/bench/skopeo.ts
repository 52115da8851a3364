/**
 * skopeo, the registry client of the bench, run inside a sandbox so names resolve through the
 * sandbox's resolv.conf (Layover's DNS) unless `resolvConf` says otherwise (the upstream resolver's,
 * for direct access to registry-direct.test).
 *
 * Hermetic: `--insecure-policy` (no /etc/containers/policy.json), an empty registries.conf (no
 * mirrors, no search registries), an empty auth file (no host credentials), TMPDIR in the sandbox.
 * Trust is only what `certDir` holds: a directory of `*.crt` CA files, e.g. the test CA's `trustDir`
 * or a Layover process's `certDir` (never a directory with a `.key` in it: skopeo takes that for a
 * client key and fails). TLS verification stays on.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecResult, Sandbox } from './sandbox.js';

export interface SkopeoOptions {
  /** CA directory for the source (copy, inspect) or destination (push). */
  certDir?: string;
  /** user:password. */
  creds?: string;
  resolvConf?: string;
  env?: Record<string, string>;
  /** Return a failed run instead of throwing. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

/** Runs `skopeo --insecure-policy ARGS`; throws with skopeo's stderr on a non-zero exit unless allowFailure. */
export async function skopeo(sandbox: Sandbox, args: string[], options: SkopeoOptions = {}): Promise<ExecResult> {
  const result = await sandbox.exec('skopeo', ['--insecure-policy', ...args], {
    env: { ...hermeticEnv(sandbox), ...options.env },
    ...(options.resolvConf ? { resolvConf: options.resolvConf } : {}),
    timeoutMs: options.timeoutMs ?? 120_000,
  });
  if (result.code !== 0 && !options.allowFailure) {
    throw new Error(`skopeo ${args.join(' ')} failed (${result.code}) in ${sandbox.name}:\n${result.stderr}`);
  }
  return result;
}

/** The manifest exactly as served (`skopeo inspect --raw`). `ref` is `docker://host/repo:tag` or `@digest`. */
export async function inspectRaw(sandbox: Sandbox, ref: string, options: SkopeoOptions = {}): Promise<string> {
  return (await skopeo(sandbox, ['inspect', '--raw', ...srcFlags(options, '--'), ref], options)).stdout;
}

/**
 * `skopeo copy SRC dir:DEST`: DEST gets manifest.json and one file per blob named by its hex digest,
 * the bytes as served, so two copies can be compared file by file. `all` copies every platform of an
 * index (otherwise skopeo picks linux/amd64).
 */
export async function copyToDir(sandbox: Sandbox, src: string, destDir: string, options: SkopeoOptions & { all?: boolean } = {}): Promise<ExecResult> {
  mkdirSync(destDir, { recursive: true });
  const args = ['copy', ...srcFlags(options), ...(options.all ? ['--all'] : []), src, `dir:${destDir}`];
  return skopeo(sandbox, args, options);
}

/** Source flags; `inspect` spells them without the `src-` prefix. */
function srcFlags(options: SkopeoOptions, prefix = '--src-'): string[] {
  return [
    `${prefix}tls-verify=true`,
    ...(options.certDir ? [`${prefix}cert-dir`, options.certDir] : []),
    ...(options.creds ? [`${prefix}creds`, options.creds] : []),
  ];
}

function hermeticEnv(sandbox: Sandbox): Record<string, string> {
  const dir = join(sandbox.dir, 'skopeo');
  const registriesConf = join(dir, 'registries.conf');
  const authFile = join(dir, 'auth.json');
  const tmp = join(dir, 'tmp');
  // Written once per sandbox: concurrent skopeo runs must never read a file another run is rewriting.
  if (!existsSync(authFile)) {
    mkdirSync(tmp, { recursive: true });
    writeFileSync(registriesConf, '');
    writeFileSync(authFile, '{}');
  }
  return { CONTAINERS_REGISTRIES_CONF: registriesConf, REGISTRY_AUTH_FILE: authFile, TMPDIR: tmp };
}
