/**
 * Memory at rest (issue 13): `layover serve` on its defaults loads no library of a feature that is
 * off. Client authentication's (bcrypt, JOSE, LDAP), the shared index's and the bucket's clients,
 * the config file's YAML parser, the pretty log printer, the public suffix list and fastify's schema
 * compilers are each megabytes of heap, loaded only once configured. A `layover serve` child process
 * records every package it loads through a module hook.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { LAYOVER_CLI } from '../../bench/layover-process.js';
import { freePort } from '../../helpers/dnsmasq.js';
import { stopChild } from '../../helpers/server-process.js';

const UNUSED_ON_DEFAULTS = ['bcryptjs', 'jose', 'ldapts', 'pino-pretty', 'yaml', 'tldts', 'ajv', '@fastify/ajv-compiler', '@aws-sdk/client-s3', '@keyv/redis', '@keyv/postgres', 'pg'];

/** Written to a temp file: appends the name of each package the process loads, once. */
const RECORDING_HOOK = `
import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
const seen = new Set();
registerHooks({
  load(url, context, next) {
    const match = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(url);
    if (match && !seen.has(match[1])) {
      seen.add(match[1]);
      appendFileSync(process.env.LOADED_PACKAGES_FILE, match[1] + '\\n');
    }
    return next(url, context);
  },
});
`;

/** Starts `layover serve` on its defaults in `dir` with the recording hook; resolves with the packages it loaded once listening. */
async function packagesLoadedByServe(dir: string, port: number): Promise<string[]> {
  const hook = join(dir, 'record-packages.mjs');
  const loaded = join(dir, 'loaded.txt');
  writeFileSync(hook, RECORDING_HOOK);
  writeFileSync(loaded, '');
  const flags = [
    `--data-dir=${join(dir, 'data')}`,
    `--https=127.0.0.1:${port}`,
    '--http=off',
    '--dns=off',
    '--proxy=off',
    '--advertise=127.0.0.1',
    // Never asked: nothing here resolves a name, but no default resolver may be dialled from a test.
    '--upstream-dns=127.0.0.1:1',
    '--registries=registry.test',
    '--log-format=json',
  ];
  const child = spawn(process.execPath, ['--import', hook, LAYOVER_CLI, 'serve', ...flags], {
    env: { ...process.env, LOADED_PACKAGES_FILE: loaded },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit').then(() => {
      throw new Error(`layover serve exited: ${output.slice(0, 2000)}`);
    });
    const listening = new Promise<void>((resolve) => {
      const look = (): void => (output.includes('layover is listening') ? resolve() : void setTimeout(look, 20));
      look();
    });
    await Promise.race([listening, exited]);
    return readFileSync(loaded, 'utf8').split('\n').filter(Boolean);
  } finally {
    await stopChild(child);
  }
}

it('layover serve on its defaults loads none of the libraries of features that are off', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layover-loads-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const packages = await packagesLoadedByServe(dir, await freePort());
  // The hook works: the packages serve needs are there (node-forge: this first start creates the CA).
  expect(packages).toEqual(expect.arrayContaining(['fastify', 'undici', 'node-forge', 'dns2', 'pino']));
  expect(packages.filter((name) => UNUSED_ON_DEFAULTS.includes(name))).toEqual([]);

  // With its CA made, a start reads it and mints leaves with Node's crypto: node-forge builds CAs only.
  const again = await packagesLoadedByServe(dir, await freePort());
  expect(again).toEqual(expect.arrayContaining(['fastify', 'undici', 'dns2', 'pino']));
  expect(again).not.toContain('node-forge');
}, 60_000);
