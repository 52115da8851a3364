#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { configFlagOptions, loadConfig } from '../config/load-config.js';
import type { CacheSubcommand } from './cache-commands.js';
import { saveCompileCache, useCompileCache } from './compile-cache.js';
import { tierUpAfterFirstCall } from './early-tier-up.js';
import { startupErrorLine } from './startup-error.js';
import { CACHE_USAGE, USAGE } from './usage.js';

// Each command's modules are imported when it runs, after the compile cache is on: `serve` alone loads
// about 1,000 files (fastify, undici, node-forge...), which V8 then compiles from its cache.
const COMMANDS = ['serve', 'ca', 'coredns', 'hosts', 'config', 'cache', 'prefetch', 'containerd-config', 'registries-conf', 'help'] as const;
type Command = (typeof COMMANDS)[number];

/** Exit code 2: the command line, the configuration or the start failed; nothing was started. */
function fail(message: string): never {
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
        force: { type: 'boolean' },
        // prefetch
        referrers: { type: 'boolean' },
        platform: { type: 'string' },
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
    fail(`${(error as Error).message} (layover --help lists the options)`);
  }
  const { values, positionals } = parsed;
  if (values.version) return void process.stdout.write(`${version()}\n`);
  const command = (positionals[0] ?? 'serve') as Command;
  const subcommand = positionals[1];
  if (command === 'cache') {
    // `layover cache` alone, or asking for help, is a question about the cache commands: answered, exit 0.
    if (values.help || subcommand === undefined) return void process.stdout.write(CACHE_USAGE);
    const { CACHE_SUBCOMMANDS } = await import('./cache-commands.js');
    if (!CACHE_SUBCOMMANDS.includes(subcommand as CacheSubcommand)) fail(`unknown command "${positionals.join(' ')}"\n\n${CACHE_USAGE}`);
  } else if (command === 'prefetch') {
    if (values.help) return void process.stdout.write(USAGE);
    if (positionals.length < 2) fail('prefetch: name at least one image, such as docker.io/library/alpine:3.20');
  } else {
    if (values.help || command === 'help') return void process.stdout.write(USAGE);
    if (!COMMANDS.includes(command) || positionals.length > 1) fail(`unknown command "${positionals.join(' ')}" (layover --help lists the commands)`);
  }

  const { k8s, 'max-size': maxSize, force, referrers, platform, server, ca, dir, help: _help, version: _version, ...flags } = values;
  const config = loadConfig({ flags });
  const mirrorOptions = { server: server as string | undefined, ca: ca as string | undefined, dir: dir as string | undefined };
  switch (command) {
    case 'serve': {
      useCompileCache(config.dataDir);
      const { serve } = await import('./serve.js');
      await serve(config);
      tierUpAfterFirstCall();
      // Written now that start-up has loaded what it needs: a process that is killed never writes it.
      return saveCompileCache();
    }
    case 'ca':
      return void process.stdout.write(await (await import('./print-commands.js')).printCa(config));
    case 'coredns':
      return void process.stdout.write((await import('./print-commands.js')).printCoredns(config, k8s === true));
    case 'hosts':
      return void process.stdout.write((await import('./print-commands.js')).printHosts(config));
    case 'config':
      return void process.stdout.write((await import('./print-config.js')).printConfig(config, { flags, env: process.env }));
    case 'containerd-config':
      return void process.stdout.write((await import('./mirror-configs.js')).containerdConfig(config, mirrorOptions));
    case 'registries-conf':
      return void process.stdout.write((await import('./mirror-configs.js')).registriesConf(config, mirrorOptions));
    case 'cache': {
      const { cacheCommand } = await import('./cache-commands.js');
      return void process.stdout.write(await cacheCommand(config, subcommand as CacheSubcommand, positionals.slice(2), { maxSize: maxSize as string | undefined, force: force === true }));
    }
    case 'prefetch':
      return (await import('./prefetch-command.js')).prefetchCommand(config, positionals.slice(1), { referrers: referrers === true, platform: platform as string | undefined });
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  // A wrong setting, a held lock, an unwritable directory, an address in use: one line naming it.
  const line = startupErrorLine(error);
  if (line !== null) fail(line);
  process.stderr.write(`layover: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
