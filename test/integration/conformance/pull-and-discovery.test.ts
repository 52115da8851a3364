/**
 * Issue 10, "Conformance": the OCI distribution-spec pull and discovery checks
 * (./conformance-client.ts), run against the real distribution registry directly and through a
 * Layover process intercepting it, side by side in the netns bench. For every check the registry
 * itself passes, Layover must pass it too, cold (a miss) and warm (from the cache), with the
 * registry's status and OCI error code. A check the registry fails says nothing about Layover
 * (2.8 returns tags unsorted, ignores n/last and has no referrers API): it is listed, not judged.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, DIRECT_HOST, INTERCEPTED_HOST, REGISTRY_ADDRESS, startBench } from '../../bench/bench.js';
import { runNodeScript } from '../../bench/node-script.js';
import type { Answer, CheckOutcome, ConformanceJob } from './conformance-client.js';

const CLIENT = join(import.meta.dirname, 'conformance-client.ts');

/** Checks 2.8 passes: if one of these stops passing on the registry, the comparison has lost its ground. */
const REGISTRY_MUST_PASS = [
  'ping /v2/',
  'GET manifest by tag',
  'HEAD manifest by digest',
  'GET manifest index by tag',
  'GET manifest nested index',
  'GET manifest unknown digest',
  'GET manifest invalid reference',
  'GET blob layer',
  'GET blob of 0 bytes',
  'GET blob by sha512',
  'GET blob Range 0-99',
  'GET blob unknown',
  'GET blob malformed digest',
  'tags list',
  'tags list unknown repository',
];

let bench: Bench;
let outcomes: CheckOutcome[];

beforeAll(async () => {
  bench = await startBench({ images: [] });
  const job: ConformanceJob = {
    registry: { address: REGISTRY_ADDRESS, name: DIRECT_HOST, caFile: bench.ca.certFile },
    layover: { name: INTERCEPTED_HOST, caFile: bench.layover!.caFile },
    repository: 'conformance/pull',
  };
  const { lines, output } = await runNodeScript<CheckOutcome>(bench.sandbox, CLIENT, job, { timeoutMs: 45_000 });
  outcomes = lines;
  // Every answer of every check, for a reader comparing by hand: LAYOVER_CONFORMANCE_DUMP=1.
  if (process.env.LAYOVER_CONFORMANCE_DUMP) process.stdout.write(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  if (outcomes.length === 0) throw new Error(`the conformance client reported nothing:\n${output}`);
}, 90_000);
afterAll(() => bench?.close());

const describeAnswer = (a: Answer): string => `${a.status} ${a.code ?? ''} ${a.failure ?? 'ok'}`.trim();

it('the registry passes the checks the comparison rests on', () => {
  const passed = outcomes.filter((o) => !o.registry.failure).map((o) => o.name);
  for (const name of REGISTRY_MUST_PASS) expect(passed, `${name}: ${JSON.stringify(outcomes.find((o) => o.name === name)?.registry)}`).toContain(name);
});

it('Layover passes every check the registry passes, cold and warm, with its status and code', () => {
  const judged = outcomes.filter((o) => !o.registry.failure);
  const mismatches = judged.flatMap((o) =>
    (['cold', 'warm'] as const)
      .filter((run) => o[run].failure || o[run].status !== o.registry.status || (o.registry.code !== undefined && o[run].code !== o.registry.code))
      .map((run) => `${o.name} (${run}): registry ${describeAnswer(o.registry)}, Layover ${describeAnswer(o[run])}`),
  );
  expect(mismatches).toEqual([]);
  // Not judged, but worth seeing in the output: what the registry itself does not do.
  const skipped = outcomes.filter((o) => o.registry.failure).map((o) => `${o.name}: ${o.registry.failure}`);
  expect(skipped.length).toBeLessThan(outcomes.length / 2);
  if (skipped.length > 0) process.stdout.write(`checks the registry fails (not judged):\n  ${skipped.join('\n  ')}\n`);
});
