/**
 * Once listening, `layover serve` has V8 compile a function to baseline code after its first call
 * (src/cli/early-tier-up.ts): code that runs once per miss is not left interpreted through a
 * process's first misses. A probe loaded into the serve process (`--import`, with V8's natives
 * syntax) calls a new function twice and asks V8 whether it runs Sparkplug's code: before Layover's
 * code runs (V8's defaults: after six or so calls) and once the test has seen it listening.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { LAYOVER_CLI } from '../../bench/layover-process.js';
import { freePort } from '../../helpers/dnsmasq.js';
import { stopChild } from '../../helpers/server-process.js';

/** Loaded before main.js: writes the probe's answer at load, and again once the test asks for it (a file appears). */
const PROBE = `
import { existsSync, writeFileSync } from 'node:fs';
const { TIER_BEFORE, TIER_ASK, TIER_AFTER } = process.env;
const pause = () => new Promise((resolve) => setTimeout(resolve, 50));
let probes = 0;
async function baselineAfterTwoCalls() {
  // A source of its own each time: V8 hands the same source's compiled function back from a cache.
  const fresh = new Function('x', 'return x + ' + ++probes);
  fresh(1);
  await pause();
  fresh(2);
  await pause();
  return new Function('f', 'return %ActiveTierIsSparkplug(f)')(fresh);
}
writeFileSync(TIER_BEFORE, String(await baselineAfterTwoCalls()));
const asked = setInterval(async () => {
  if (!existsSync(TIER_ASK)) return;
  clearInterval(asked);
  writeFileSync(TIER_AFTER, String(await baselineAfterTwoCalls()));
}, 20);
asked.unref();
`;

it('layover serve compiles a function to baseline code after its first call once it listens, not before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layover-tier-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const probe = join(dir, 'probe.mjs');
  writeFileSync(probe, PROBE);
  const files = { TIER_BEFORE: join(dir, 'before'), TIER_ASK: join(dir, 'ask'), TIER_AFTER: join(dir, 'after') };
  const flags = [
    `--data-dir=${join(dir, 'data')}`,
    `--https=127.0.0.1:${await freePort()}`,
    '--http=off',
    '--dns=off',
    '--proxy=off',
    '--advertise=127.0.0.1',
    // Never asked: nothing here resolves a name, but no default resolver may be dialled from a test.
    '--upstream-dns=127.0.0.1:1',
    '--registries=registry.test',
    '--log-format=json',
  ];
  const child = spawn(process.execPath, ['--allow-natives-syntax', '--import', probe, LAYOVER_CLI, 'serve', ...flags], {
    env: { ...process.env, ...files },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => stopChild(child));
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
  // The probe works: with V8's defaults, two calls leave a function interpreted.
  expect(readFileSync(files.TIER_BEFORE, 'utf8')).toBe('false');
  writeFileSync(files.TIER_ASK, '');
  await expect.poll(() => existsSync(files.TIER_AFTER), { timeout: 10_000 }).toBe(true);
  expect(readFileSync(files.TIER_AFTER, 'utf8')).toBe('true');
}, 60_000);
