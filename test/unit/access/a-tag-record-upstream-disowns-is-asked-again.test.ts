/**
 * A tag's record can name a digest the repository asked for does not hold (one written for another
 * registry before ports named registries: `r.example` and `r.example:5000` shared their records).
 * whenReadable (src/proxy/read-guard.ts) then runs the caller's `unknown` (the tag is asked for
 * upstream) instead of answering 404 for a tag that exists; other refusals stay refusals. A real
 * fastify app (inject), a real cache and ReadAccess; the upstream's answers are scripted.
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { AccessRecords } from '../../../src/access/access-records.js';
import { ReadAccess } from '../../../src/access/read-access.js';
import type { ProbeResult, UpstreamProbe } from '../../../src/access/upstream-probe.js';
import { whenReadable } from '../../../src/proxy/read-guard.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { blob, meta, openCache } from '../cache/cache-fixture.js';

const PORTED = { registry: 'r.example:5000', origin: 'https://r.example:5000' } as const;
const NAME = 'shared/app' as RepositoryName;

async function ask(upstreamStatus: number): Promise<{ status: number; body: string; asked: string[] }> {
  const { cache } = await openCache();
  // The manifest the record names came from r.example (443), not from the registry asked.
  const { digest, bytes } = blob(600);
  await cache.put(digest, bytes, meta({ size: bytes.length, kind: 'manifest', source: 'r.example/shared/app' }));
  const asked: string[] = [];
  const answer = async (): Promise<ProbeResult> => ({ status: upstreamStatus });
  const probe = { head: () => (asked.push('head'), answer()), proveHeld: () => (asked.push('prove'), answer()) } as unknown as UpstreamProbe;
  const readAccess = new ReadAccess({ records: new AccessRecords(cache), probe, clientAuthOn: false, layoverCredentials: () => false, ttlMs: 60_000, anonymousTtlMs: 60_000, failOpen: [] });
  const app = Fastify();
  app.get('/tag', (request, reply) =>
    whenReadable({ readAccess } as never, request, reply, PORTED as never, NAME, { kind: 'manifest', digest }, () => reply.send('the cached manifest'), () => reply.send('asked upstream for the tag')),
  );
  const res = await app.inject({ method: 'GET', url: '/tag' });
  await app.close();
  return { status: res.statusCode, body: res.body, asked };
}

describe("a tag's record naming a digest the repository does not hold", () => {
  it('is asked for again upstream instead of answering 404 for a tag that exists', async () => {
    const { status, body, asked } = await ask(404);
    // Before the change: 404 MANIFEST_UNKNOWN.
    expect([status, body]).toEqual([200, 'asked upstream for the tag']);
    expect(asked.length).toBeGreaterThan(0);
  });

  it('stays refused when upstream refuses the client (401, 403): nothing is asked for on its behalf', async () => {
    for (const refusal of [401, 403]) {
      const { status, body } = await ask(refusal);
      expect(status).toBe(refusal);
      expect(body).not.toContain('asked upstream');
    }
  });
});
