/**
 * Memory at rest (issue 13): `layover serve` on its defaults loads no library of a feature that is
 * off. Client authentication's (bcrypt, JOSE, LDAP), the shared index's and the bucket's clients,
 * the config file's YAML parser, the pretty log printer, the public suffix list and fastify's schema
 * compilers are each megabytes of heap, loaded only once configured. A `layover serve` child process
 * records every package it loads through a module hook.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { serveOnDefaults } from '../../helpers/serve-on-defaults.js';
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
async function packagesLoadedByServe(dir: string): Promise<string[]> {
  const hook = join(dir, 'record-packages.mjs');
  const loaded = join(dir, 'loaded.txt');
  writeFileSync(hook, RECORDING_HOOK);
  writeFileSync(loaded, '');
  const child = await serveOnDefaults(dir, { nodeArgs: ['--import', hook], env: { LOADED_PACKAGES_FILE: loaded } });
  try {
    return readFileSync(loaded, 'utf8').split('\n').filter(Boolean);
  } finally {
    await stopChild(child);
  }
}

it('layover serve on its defaults loads none of the libraries of features that are off', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layover-loads-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const packages = await packagesLoadedByServe(dir);
  // The hook works: the packages serve needs are there (node-forge: this first start creates the CA).
  expect(packages).toEqual(expect.arrayContaining(['fastify', 'undici', 'node-forge', 'dns2', 'pino']));
  expect(packages.filter((name) => UNUSED_ON_DEFAULTS.includes(name))).toEqual([]);

  // With its CA made, a start reads it and mints leaves with Node's crypto: node-forge builds CAs only.
  const again = await packagesLoadedByServe(dir);
  expect(again).toEqual(expect.arrayContaining(['fastify', 'undici', 'dns2', 'pino']));
  expect(again).not.toContain('node-forge');
}, 60_000);
