/**
 * The real `layover serve` (dist/cli/main.js) on its defaults as a child process: its data directory
 * in `dir`, HTTPS on a free loopback port, every other listener off, and an upstream resolver that no
 * one is asked (nothing here resolves a name, but no default resolver may be dialled from a test).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { LAYOVER_CLI } from '../bench/layover-process.js';
import { freePort } from './dnsmasq.js';

export interface ServeOptions {
  /** Node's own options, before the CLI (`--import`, V8 flags). */
  nodeArgs?: string[];
  /** Added to the test's environment. */
  env?: NodeJS.ProcessEnv;
}

/** Starts it; resolves with the process once it logs that it listens (the caller stops it: stopChild). */
export async function serveOnDefaults(dir: string, options: ServeOptions = {}): Promise<ChildProcess> {
  const flags = [
    `--data-dir=${join(dir, 'data')}`,
    `--https=127.0.0.1:${await freePort()}`,
    '--http=off',
    '--dns=off',
    '--proxy=off',
    '--advertise=127.0.0.1',
    '--upstream-dns=127.0.0.1:1',
    '--registries=registry.test',
    '--log-format=json',
  ];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), LAYOVER_CLI, 'serve', ...flags], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(() => {
    throw new Error(`layover serve exited: ${output.slice(0, 2000)}`);
  });
  const listening = new Promise<void>((resolve) => {
    const look = (): void => {
      if (output.includes('layover is listening')) resolve();
      else if (child.exitCode === null && child.signalCode === null) setTimeout(look, 20);
    };
    look();
  });
  try {
    await Promise.race([listening, exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  // Once listening, an exit is the caller's business (stopChild awaits it).
  exited.catch(() => undefined);
  return child;
}
