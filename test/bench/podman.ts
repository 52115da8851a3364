/**
 * podman inside a sandbox, hermetic like ./skopeo.ts: its storage (`--root`, the vfs driver, which
 * needs no kernel overlay support) and temp files under the sandbox's temp dir, its `--runroot` in a
 * short directory removed with the sandbox (podmanRunroot), an accept-anything signature policy and
 * an empty auth file of its own, and only the registries.conf the caller gives
 * (CONTAINERS_REGISTRIES_CONF). Trust is the `certDir` passed (`--cert-dir`).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecResult, Sandbox } from './sandbox.js';

export interface PodmanOptions {
  /** registries.conf for this run (mirrors). */
  registriesConf: string;
  /** A directory of CA `*.crt` files (`--cert-dir`). */
  certDir?: string;
  resolvConf?: string;
  allowFailure?: boolean;
  timeoutMs?: number;
}

export interface Podman {
  readonly root: string;
  /** Runs `podman <global flags> ARGS`; throws with podman's stderr on a non-zero exit unless allowFailure. */
  run(args: string[], options: PodmanOptions): Promise<ExecResult>;
  /** `podman pull REF`. */
  pull(ref: string, options: PodmanOptions): Promise<ExecResult>;
}

let instances = 0;

/**
 * A runroot for podman, which refuses one longer than 50 characters: a directory of its own under /tmp
 * (a sandbox's directory, under a test run's TMPDIR, is too deep), removed with the sandbox.
 */
export function podmanRunroot(sandbox: Sandbox): string {
  const dir = mkdtempSync('/tmp/podman-');
  sandbox.onDestroy(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function podmanIn(sandbox: Sandbox): Podman {
  const dir = join(sandbox.dir, `podman-${instances++}`);
  const root = join(dir, 'root');
  const runroot = podmanRunroot(sandbox);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const policy = join(dir, 'policy.json');
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const authFile = join(dir, 'auth.json');
  writeFileSync(authFile, '{}');
  const containersConf = join(dir, 'containers.conf');
  writeFileSync(containersConf, '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n');
  const global = ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs', '--tmpdir', tmp, '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];

  const run = async (args: string[], options: PodmanOptions): Promise<ExecResult> => {
    const result = await sandbox.exec('podman', [...global, ...args], {
      env: { CONTAINERS_REGISTRIES_CONF: options.registriesConf, CONTAINERS_CONF: containersConf, REGISTRY_AUTH_FILE: authFile, TMPDIR: tmp, XDG_RUNTIME_DIR: runroot },
      ...(options.resolvConf ? { resolvConf: options.resolvConf } : {}),
      timeoutMs: options.timeoutMs ?? 120_000,
    });
    if (result.code !== 0 && !options.allowFailure) throw new Error(`podman ${args.join(' ')} failed (${result.code}) in ${sandbox.name}:\n${result.stderr}`);
    return result;
  };
  return {
    root,
    run,
    pull: (ref, options) => run(['pull', '--signature-policy', policy, ...(options.certDir ? ['--cert-dir', options.certDir] : []), ref], options),
  };
}
