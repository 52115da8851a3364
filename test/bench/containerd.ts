/**
 * The real containerd (Debian's `containerd`, 1.6) inside a sandbox, with everything it keeps under
 * the sandbox's temp dir: root (content store, metadata, snapshots), state, the gRPC and ttrpc
 * sockets and the `opt` plugin's directory. The CRI plugin and the snapshotters that need kernel
 * features or extra tools are disabled; pulls use the `native` snapshotter (plain copies), which
 * works on any filesystem.
 *
 * `ctr()` runs the `ctr` client against it. Registry requests of `ctr images pull` are made by ctr
 * itself, not by the daemon, so ctr's environment (SSL_CERT_FILE, resolv.conf) is what matters.
 *
 *   const containerd = await startContainerd(sandbox);
 *   await containerd.ctr(['images', 'pull', '--hosts-dir', dir, 'registry.test/bench/oci:v1'], { resolvConf });
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ExecOptions, type ExecResult, type Sandbox, stopChild } from './sandbox.js';

export interface Containerd {
  /** The gRPC socket (ctr's --address). */
  readonly address: string;
  readonly dir: string;
  /** Runs `ctr --address … --namespace layover-test ARGS`; throws on a non-zero exit unless allowFailure. */
  ctr(args: string[], options?: ExecOptions & { allowFailure?: boolean }): Promise<ExecResult>;
  /** containerd's own output so far. */
  log(): string;
  stop(): Promise<void>;
}

const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
];

let instances = 0;

export async function startContainerd(sandbox: Sandbox): Promise<Containerd> {
  const dir = join(sandbox.dir, `containerd-${instances++}`);
  const run = join(dir, 'run');
  mkdirSync(run, { recursive: true });
  const address = join(run, 'containerd.sock');
  const config = [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    `disabled_plugins = ${JSON.stringify(DISABLED_PLUGINS)}`,
    '[grpc]',
    `  address = ${JSON.stringify(address)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(join(run, 'containerd-ttrpc.sock'))}`,
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    '',
  ].join('\n');
  const configFile = join(dir, 'config.toml');
  writeFileSync(configFile, config);

  const child = sandbox.spawn('containerd', ['--config', configFile]);
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.includes('containerd successfully booted')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void once(child, 'exit').then(([code]) => reject(new Error(`containerd exited (${String(code)}) in ${sandbox.name}:\n${output}`)));
  });
  const timer = setTimeout(() => void stopChild(child, 'SIGKILL'), 20_000);
  try {
    await ready;
  } finally {
    clearTimeout(timer);
  }
  const stop = (): Promise<void> => stopChild(child);
  sandbox.onDestroy(stop);

  return {
    address,
    dir,
    async ctr(args, options = {}) {
      const { allowFailure, ...execOptions } = options;
      const result = await sandbox.exec('ctr', ['--address', address, '--namespace', 'layover-test', ...args], execOptions);
      if (result.code !== 0 && !allowFailure) throw new Error(`ctr ${args.join(' ')} failed (${result.code}) in ${sandbox.name}:\n${result.stderr}\ncontainerd:\n${output.slice(-4000)}`);
      return result;
    },
    log: () => output,
    stop,
  };
}
