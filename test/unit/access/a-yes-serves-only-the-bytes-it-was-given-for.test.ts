/**
 * A read check that asks upstream takes time, and what the cache holds may change meanwhile: a yes
 * given for a registry's own download in progress must not send another registry's copy that replaced
 * it while the upstream answered. whenReadable (src/proxy/read-guard.ts) asks again when the bytes
 * it would serve are no longer the asking registry's to have. A real fastify app (inject), a real
 * cache and ReadAccess; the upstream's answers are scripted.
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { ReadAccess } from '../../../src/access/read-access.js';
import type { ProbeResult, UpstreamProbe } from '../../../src/access/upstream-probe.js';
import { whenReadable } from '../../../src/proxy/read-guard.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { blob, handSource, meta, openCache } from '../cache/cache-fixture.js';

const LIAR = { registry: 'liar.test', origin: 'https://liar.test' } as const;
const NAME = 'team/app' as RepositoryName;

describe('a yes serves only the bytes it was given for', () => {
  it('asks again when another registry\'s copy replaced the asking registry\'s download while upstream answered', async () => {
    const { cache } = await openCache();
    const records = new AccessRecords(cache);
    const { digest, bytes } = blob(4096 + 100);
    // liar.test's own download of the digest is in progress: its clients' word (a HEAD) is taken.
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length, source: 'liar.test/team/app' }));
    await records.addMember(digest, repositoryKey(LIAR.origin, NAME));
    await records.setReach('anonymous', repositoryKey(LIAR.origin, NAME), false, Date.now());
    const asked: string[] = [];
    const probe = {
      head: async (): Promise<ProbeResult> => {
        asked.push('head');
        // While the HEAD is answered, liar.test breaks its download off and registry.test's copy is cached.
        source.destroy(new Error('cut off'));
        await fill.done.catch(() => undefined);
        await cache.put(digest, bytes, meta({ size: bytes.length, source: 'registry.test/team/app' }));
        return { status: 200 };
      },
      proveHeld: async (): Promise<ProbeResult> => (asked.push('prove'), { status: 404, refuted: true }),
    } as unknown as UpstreamProbe;
    const readAccess = new ReadAccess({ records, probe, clientAuthOn: false, layoverCredentials: () => false, ttlMs: 60_000, anonymousTtlMs: 60_000, failOpen: [] });

    const app = Fastify();
    app.get('/blob', (request, reply) => whenReadable({ readAccess } as never, request, reply, LIAR as never, NAME, { kind: 'blob', digest }, () => reply.send('the cached bytes')));
    const answer = await app.inject({ method: 'GET', url: '/blob', headers: { authorization: 'Bearer liar-client' } });
    await app.close();
    // Before the change: 200 with registry.test's bytes.
    expect(answer.statusCode).toBe(404);
    // Fastify's own error answer here (Layover's error handler is not installed): the code is the OciError's.
    expect(answer.body).toContain('BLOB_UNKNOWN');
    expect(asked).toEqual(['head', 'prove']);
  });
});
