/**
 * Once listening, `layover serve` has V8 queue a function for baseline code at its first call
 * (src/cli/early-tier-up.ts): code that runs once per miss is not left interpreted through a
 * process's first misses. A probe loaded into the serve process (`--import`, with V8's natives
 * syntax) calls a new function twice and asks V8 whether it runs Sparkplug's code: before Layover's
 * code runs (V8's defaults: not before its ninth call) and once the test has seen it listening. The
 * function is large enough (over 4 KB of code) to be compiled as soon as it is queued.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { serveOnDefaults } from '../../helpers/serve-on-defaults.js';
import { stopChild } from '../../helpers/server-process.js';

/** Loaded before main.js: writes the probe's answer at load, and again once the test asks for it (a file appears). */
const PROBE = `
import { existsSync, writeFileSync } from 'node:fs';
const { TIER_BEFORE, TIER_ASK, TIER_AFTER } = process.env;
const pause = () => new Promise((resolve) => setTimeout(resolve, 50));
let probes = 0;
async function baselineAfterTwoCalls() {
  // A source of its own each time: V8 hands the same source's compiled function back from a cache.
  probes += 1;
  const body = Array.from({ length: 150 }, (_, i) => 'o.k' + i + ' = (o.k' + i + ' ?? ' + probes + ') + x;').join('\\n');
  const fresh = new Function('x', 'const o = {};\\n' + body + '\\nreturn o;');
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

it('layover serve has a function compiled to baseline code after its first call once it listens, not before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layover-tier-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const probe = join(dir, 'probe.mjs');
  writeFileSync(probe, PROBE);
  const files = { TIER_BEFORE: join(dir, 'before'), TIER_ASK: join(dir, 'ask'), TIER_AFTER: join(dir, 'after') };
  const child = await serveOnDefaults(dir, { nodeArgs: ['--allow-natives-syntax', '--import', probe], env: files });
  onTestFinished(() => stopChild(child));
  // The probe works: with V8's defaults, two calls leave a function interpreted.
  expect(readFileSync(files.TIER_BEFORE, 'utf8')).toBe('false');
  writeFileSync(files.TIER_ASK, '');
  await expect.poll(() => existsSync(files.TIER_AFTER), { timeout: 10_000 }).toBe(true);
  expect(readFileSync(files.TIER_AFTER, 'utf8')).toBe('true');
}, 60_000);
