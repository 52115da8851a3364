import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { startTokenBench, type TokenBench } from '../auth/auth-bench.js';
import { curl } from '../proxy/curl.js';
import { parseExposition, type Sample, total } from '../../unit/metrics/exposition.js';

// The real distribution registry in token mode (test/fixtures/token-server.mjs as its realm), the
// real `layover serve` in a loopback-only sandbox with dnsmasq as its upstream resolver, skopeo,
// curl and dig as clients. Layover holds an account for the registry (AUTH_REGISTRIES), so it
// fetches the upstream tokens itself. What /metrics says is checked against what happened.
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
const ALICE = ['alice', randomBytes(12).toString('hex')] as const;

let t: TokenBench;
beforeAll(async () => {
  t = await startTokenBench(
    {
      [PUSHER[0]]: { password: PUSHER[1], grants: { '': ['pull', 'push'] } },
      [ALICE[0]]: { password: ALICE[1], grants: { 'bench/': ['pull'] } },
    },
    { images: ['oci', 'docker'], layover: { env: { AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${ALICE[0]}:${ALICE[1]}` } } },
  );
}, 180_000);
afterAll(() => t?.bench.close());

async function scrape(): Promise<Sample[]> {
  const res = await curl(t.bench, 'http://127.0.0.1/metrics');
  expect(res.status).toBe(200);
  return parseExposition(res.body.toString('utf8'));
}

const dig = (name: string) => t.bench.sandbox.exec('dig', ['@127.0.0.1', '+tries=1', '+time=2', '+short', name, 'A']);

describe('/metrics after real pulls through Layover', () => {
  it('counts misses, hits, a refusal, bytes by source, tokens, DNS answers and forwards, and TLS handshakes as they happened', async () => {
    const { bench } = t;
    const image = bench.images.oci!;
    const blobBytes = image.blobs.reduce((sum, blob) => sum + blob.size, 0);
    const registry = INTERCEPTED_HOST;

    const cold = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'metrics-cold'));
    expect(cold.code).toBe(0);
    const afterCold = await scrape();
    expect(total(afterCold, 'layover_requests_total', { route: 'blob', registry, cache: 'miss', status: '2xx' })).toBe(image.blobs.length);
    expect(total(afterCold, 'layover_requests_total', { route: 'blob', cache: 'hit' })).toBe(0);
    expect(total(afterCold, 'layover_served_bytes_total', { registry, source: 'cache' })).toBe(0);
    const manifestBytesCold = total(afterCold, 'layover_served_bytes_total', { registry, source: 'upstream' }) - blobBytes;
    // The tag's manifest, fetched from the upstream (ENABLE_MANIFEST_CACHE is off: every tag goes upstream).
    expect(manifestBytesCold).toBe(image.raw.length);

    const warm = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'metrics-warm'));
    expect(warm.code).toBe(0);
    // A registry Layover does not proxy, asked through docker.proxy's mirror path: refused before anything is dialled.
    const refused = await curl(bench, 'https://docker.proxy/v2/elsewhere.example/app/manifests/latest');
    expect(refused.status).toBe(404);
    expect((await dig(INTERCEPTED_HOST)).stdout.trim()).toBe('127.0.0.1');
    // A name dnsmasq (Layover's upstream resolver) answers: forwarded.
    expect((await dig('registry-direct.test')).stdout.trim()).toBe('127.0.0.2');

    const samples = await scrape();
    expect(total(samples, 'layover_requests_total', { route: 'blob', registry, cache: 'hit', status: '2xx' })).toBe(image.blobs.length);
    expect(total(samples, 'layover_requests_total', { route: 'blob', registry, cache: 'miss' })).toBe(image.blobs.length);
    expect(total(samples, 'layover_requests_total', { route: 'manifest', registry, cache: 'miss', status: '2xx' })).toBe(2);
    expect(total(samples, 'layover_requests_total', { route: 'manifest', registry: '', cache: 'denied', status: '4xx' })).toBe(1);
    expect(total(samples, 'layover_requests_total', { cache: 'denied' })).toBe(1);
    // Bytes saved: every blob of the warm pull came from the cache; the upstream sent each once, and the tag twice.
    expect(total(samples, 'layover_served_bytes_total', { registry, source: 'cache' })).toBe(blobBytes);
    expect(total(samples, 'layover_served_bytes_total', { registry, source: 'upstream' })).toBe(blobBytes + 2 * image.raw.length);
    expect(total(samples, 'layover_served_bytes_total', { source: 'peer' })).toBe(0);

    expect(total(samples, 'layover_upstream_tokens_fetched_total', { registry })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'layover_upstream_request_duration_seconds_count', { registry })).toBeGreaterThanOrEqual(image.blobs.length + 2);
    expect(total(samples, 'layover_upstream_errors_total')).toBe(0);
    expect(total(samples, 'layover_dns_queries_total', { result: 'answered' })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'layover_dns_queries_total', { result: 'forwarded' })).toBe(1);
    expect(total(samples, 'layover_dns_queries_total', { result: 'refused' })).toBe(0);
    // skopeo and curl each made TLS connections to registry.test and docker.proxy; Layover minted for registry.test.
    expect(total(samples, 'layover_tls_handshakes_total', { result: 'ok' })).toBeGreaterThanOrEqual(3);
    expect(total(samples, 'layover_tls_handshakes_total', { result: 'failed' })).toBe(0);
    expect(total(samples, 'layover_tls_certificates_minted_total')).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'layover_cache_entries')).toBe(image.blobs.length + 1);
    expect(total(samples, 'layover_cache_bytes')).toBe(blobBytes + image.raw.length);
    expect(total(samples, 'layover_fills_in_flight')).toBe(0);
    // This scrape's own connection, on the HTTP listener.
    expect(total(samples, 'layover_open_connections', { listener: 'http' })).toBeGreaterThanOrEqual(1);
  }, 180_000);

  it('counts a handshake the client gave up on (it does not trust the certificate) as failed', async () => {
    const { bench } = t;
    const before = total(await scrape(), 'layover_tls_handshakes_total', { result: 'failed' });
    // No --cacert: curl refuses Layover's certificate and aborts the handshake.
    const result = await bench.sandbox.exec('curl', ['-sS', '-o', '/dev/null', `https://${INTERCEPTED_HOST}/v2/`]);
    expect(result.code).not.toBe(0);
    expect(total(await scrape(), 'layover_tls_handshakes_total', { result: 'failed' })).toBe(before + 1);
  }, 60_000);

  it('three concurrent pulls of a new image: bytes from the upstream are those it sent, every other byte came from the cache', async () => {
    const { bench } = t;
    const image = bench.images.docker!;
    const blobBytes = image.blobs.reduce((sum, blob) => sum + blob.size, 0);
    const registry = INTERCEPTED_HOST;
    const before = await scrape();
    bench.registry.clearRequests();
    const pulls = await Promise.all([0, 1, 2].map((i) => bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, `metrics-concurrent-${i}`))));
    for (const pull of pulls) expect(pull.code).toBe(0);
    const after = await scrape();
    await bench.registry.sync();
    // What the registry really sent: each blob Layover did not hold yet, once (a layer shared with bench/oci is held already).
    const fetched = image.blobs.filter((blob) => bench.registry.requests().some((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${blob.digest}`)));
    const blobGets = bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    expect(blobGets).toHaveLength(fetched.length);
    expect(fetched.length).toBeGreaterThan(0);
    const fetchedBytes = fetched.reduce((sum, blob) => sum + blob.size, 0);
    const delta = (labels: Record<string, string>): number => total(after, 'layover_served_bytes_total', labels) - total(before, 'layover_served_bytes_total', labels);
    // The tag's manifest went upstream for each client (ENABLE_MANIFEST_CACHE is off).
    expect(delta({ registry, source: 'upstream' })).toBe(fetchedBytes + 3 * image.raw.length);
    // Clients that joined a download in progress, or came after it, got bytes the upstream did not send again.
    expect(delta({ registry, source: 'cache' })).toBe(3 * blobBytes - fetchedBytes);
  }, 180_000);
});
