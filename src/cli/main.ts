#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/config-error.js';
import { configFlagOptions, loadConfig } from '../config/load-config.js';
import { CACHE_SUBCOMMANDS, cacheCommand, type CacheSubcommand } from './cache-commands.js';
import { containerdConfig, registriesConf } from './mirror-configs.js';
import { printCa, printConfig, printCoredns, printHosts } from './print-commands.js';
import { serve } from './serve.js';
import { USAGE } from './usage.js';

const COMMANDS = ['serve', 'ca', 'coredns', 'hosts', 'config', 'cache', 'containerd-config', 'registries-conf', 'help'] as const;
type Command = (typeof COMMANDS)[number];

/** Exit code 2: the command line or the configuration is wrong; nothing was started. */
function usageError(message: string): never {
  process.stderr.write(`layover: ${message}\n`);
  process.exit(2);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...configFlagOptions(),
        k8s: { type: 'boolean' },
        'max-size': { type: 'string' },
        // containerd-config and registries-conf
        server: { type: 'string' },
        ca: { type: 'string' },
        dir: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
  } catch (error) {
    usageError(`${(error as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.version) return void process.stdout.write(`${version()}\n`);
  const command = (positionals[0] ?? 'serve') as Command;
  if (values.help || command === 'help') return void process.stdout.write(USAGE);
  const subcommand = positionals[1] as CacheSubcommand | undefined;
  const validSubcommand = command === 'cache' ? subcommand !== undefined && CACHE_SUBCOMMANDS.includes(subcommand) && positionals.length === 2 : positionals.length === 1 || positionals.length === 0;
  if (!COMMANDS.includes(command) || !validSubcommand) usageError(`unknown command "${positionals.join(' ')}"\n${USAGE}`);

  const { k8s, 'max-size': maxSize, server, ca, dir, help: _help, version: _version, ...flags } = values;
  let config;
  try {
    config = loadConfig({ flags });
  } catch (error) {
    if (error instanceof ConfigError) usageError(error.message);
    throw error;
  }

  switch (command) {
    case 'serve':
      return serve(config);
    case 'ca':
      return void process.stdout.write(await printCa(config));
    case 'coredns':
      return void process.stdout.write(printCoredns(config, k8s === true));
    case 'hosts':
      return void process.stdout.write(printHosts(config));
    case 'config':
      return void process.stdout.write(printConfig(config));
    case 'containerd-config':
    case 'registries-conf':
      try {
        const options = { server: server as string | undefined, ca: ca as string | undefined, dir: dir as string | undefined };
        return void process.stdout.write(command === 'containerd-config' ? containerdConfig(config, options) : registriesConf(config, options));
      } catch (error) {
        if (error instanceof ConfigError) usageError(error.message);
        throw error;
      }
    case 'cache':
      try {
        return void process.stdout.write(await cacheCommand(config, subcommand!, maxSize as string | undefined));
      } catch (error) {
        if (error instanceof ConfigError) usageError(error.message);
        throw error;
      }
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  // Configuration found wrong only at start (a custom domain's certificate and key that do not match).
  if (error instanceof ConfigError) usageError(error.message);
  const e = error as NodeJS.ErrnoException;
  // The common start-up failures get one clear line instead of a stack.
  if (e.code === 'EACCES' || e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL') {
    process.stderr.write(`layover: cannot listen: ${e.message}${e.code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}\n`);
  } else {
    process.stderr.write(`layover: ${e.stack ?? String(error)}\n`);
  }
  process.exit(1);
});
