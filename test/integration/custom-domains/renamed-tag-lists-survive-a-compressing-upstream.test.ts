/**
 * A tag list asked through a custom domain is read and renamed by Layover (the upstream's repository
 * name becomes the client's). Clients such as Go's take gzip and say so; an upstream that compresses
 * when asked answered Layover with a gzipped body it could not parse (502). Layover now asks for the
 * list uncompressed. The fixture upstream (faults/held-upstream.ts) gzips its tag list when asked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HELD_HOST, type HeldBench, startHeldBench } from '../faults/held-upstream.js';

const DOMAIN = 'tags.example.test';
let bench: HeldBench;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-tag-list-'));
  const config = join(dir, 'layover.yaml');
  // The fixture's port is known only once it listens: the mapping names the registry as REGISTRIES does.
  bench = await startHeldBench((port) => ({ config: writeConfig(config, port) }));
}, 60_000);
afterAll(async () => {
  await bench?.close();
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(file: string, port: number): string {
  writeFileSync(file, ['customDomains:', `  - {from: ${DOMAIN}/team, to: ${HELD_HOST}:${port}/ok}`, ''].join('\n'));
  return file;
}

it('a tag list through a custom domain, asked by a client that takes gzip, comes back renamed', async () => {
  const list = await bench.ask('/v2/team/app/tags/list', { servername: DOMAIN, headers: { 'accept-encoding': 'gzip' } });
  expect(list.status, list.body.toString()).toBe(200);
  expect(JSON.parse(list.body.toString())).toEqual({ name: 'team/app', tags: ['v1'] });
});
