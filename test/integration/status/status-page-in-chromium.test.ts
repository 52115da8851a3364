import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../../src/cache/blob-cache.js';
import { HOUR_MS } from '../../../src/status/request-history.js';
import { startBench, INTERCEPTED_HOST, type Bench } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { launchChromium, type Chromium, type Page } from '../../helpers/chromium.js';
import { curl } from '../proxy/curl.js';

// Real pulls (skopeo) through a real `layover serve` from the distribution registry, all inside the
// bench's loopback-only network namespace; Debian's headless Chromium runs in the same namespace,
// loads the status page from Layover's HTTP listener and reads its numbers from the DOM.

/** Where the page's screenshot is kept: LAYOVER_TEST_ARTIFACTS, else test-artifacts/ in the project (git-ignored). */
const ARTIFACTS = process.env.LAYOVER_TEST_ARTIFACTS ?? fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));

// Text that runs if it reaches the page as HTML. It arrives through the history saved in the cache's
// records (which, on a shared index, other replicas write); a repository name that reached a route
// would have been refused (NAME_INVALID) before anything counted it.
const HOSTILE_REPOSITORY = 'evil/<img src=x onerror="window.__layoverXss=1">';
const HOSTILE_MESSAGE = '</td><script>window.__layoverXss=2</script><img src=x onerror="window.__layoverXss=3">';
const SEEDED_REQUESTS = 5;

let bench: Bench;
let browser: Chromium;
let image: PushedImage;
let dataDir: string;
const page = 'http://127.0.0.1/';

/** A history as a Layover that ran two days ago would have saved it, with hostile text in it. */
async function seedHistory(dir: string): Promise<void> {
  const cache = await BlobCache.open({ dir: join(dir, 'cache'), maxSize: 1 << 30, logger: captureLogger().logger, stallTimeoutMs: 5_000 });
  const twoDaysAgo = Math.floor((Date.now() - 48 * HOUR_MS) / HOUR_MS) * HOUR_MS;
  const totals = { requests: SEEDED_REQUESTS, hits: 4, misses: 1, bytesFromCache: 4096, bytesFromUpstream: 1024, errors: 1, evictions: 0, evictedBytes: 0 };
  await cache.setRecord('status/history', {
    version: 1,
    since: twoDaysAgo,
    minutes: [],
    hours: [{ start: twoDaysAgo, ...totals }],
    images: [{ image: `${INTERCEPTED_HOST}/${HOSTILE_REPOSITORY}`, pulls: 1, bytes: 1, lastAt: twoDaysAgo }],
    errors: [{ at: twoDaysAgo, registry: INTERCEPTED_HOST, repository: HOSTILE_REPOSITORY, route: 'manifest', status: 500, message: HOSTILE_MESSAGE }],
  });
  await cache.close();
}

beforeAll(async () => {
  bench = await startBench({ images: ['oci'], layover: false });
  image = bench.images.oci!;
  dataDir = mkdtempSync(join(bench.sandbox.dir, 'layover-data-'));
  await seedHistory(dataDir);
  await bench.startLayover({ dataDir });
  browser = await launchChromium({ netns: bench.sandbox.name });
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await bench?.close();
});

/** The series of one metric in /metrics, each with its labels and value. */
async function scrape(): Promise<(name: string) => Array<{ labels: Record<string, string>; value: number }>> {
  const result = await curl(bench, 'http://127.0.0.1/metrics');
  expect(result.status, result.stderr).toBe(200);
  const lines = result.body.toString().split('\n').filter((line) => line && !line.startsWith('#'));
  return (name) =>
    lines.flatMap((line) => {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match || match[1] !== name) return [];
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
      return [{ labels, value: Number(match[3]) }];
    });
}

const sum = (series: Array<{ labels: Record<string, string>; value: number }>, where: Record<string, string>): number =>
  series.filter((s) => Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((total, s) => total + s.value, 0);

/** A number the page shows, from its data-value (the raw value behind the formatted text). */
const shown = (p: Page, metric: string): Promise<number> => p.evaluate<number>(`Number(document.querySelector('[data-metric="${metric}"]')?.dataset.value)`);
const tableRows = (p: Page, table: string): Promise<string[][]> =>
  p.evaluate<string[][]>(`[...document.querySelectorAll('tbody[data-table="${table}"] tr')].map((tr) => [...tr.cells].map((td) => td.textContent))`);
/** Waits for the page's script to have fetched /status.json again after `after`. */
const refreshedAfter = (p: Page, after: number): Promise<unknown> => p.waitFor(`Number(document.body.dataset.refreshed) > ${after}`, 30_000);

describe('the status page in a real browser', () => {
  it('shows after real pulls the numbers /metrics shows, and the pulled repository among the top images', async () => {
    const tab = await browser.newPage();
    await tab.navigate(page);
    expect(await shown(tab, 'requests-hit')).toBe(0);
    const loadedAt = await tab.evaluate<number>('Date.now()');

    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'pull-1'));
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'pull-2'));
    const metrics = await scrape();
    const requests = metrics('layover_requests_total');
    const served = metrics('layover_served_bytes_total');
    const expected = {
      'requests-hit': sum(requests, { cache: 'hit' }),
      'requests-miss': sum(requests, { cache: 'miss' }),
      'bytes-from-cache': sum(served, { source: 'cache' }),
      'bytes-from-upstream': sum(served, { source: 'upstream' }),
    };
    // The second pull's blobs came from the cache, the first one's from the registry.
    expect(expected['requests-hit']).toBeGreaterThanOrEqual(image.blobs.length);
    expect(expected['requests-miss']).toBeGreaterThanOrEqual(image.blobs.length);
    expect(expected['bytes-from-cache']).toBeGreaterThanOrEqual(image.blobs.reduce((total, b) => total + b.size, 0));

    // The page updates itself from /status.json (no reload) to what /metrics says.
    await refreshedAfter(tab, loadedAt);
    await tab.waitFor(`document.querySelector('[data-metric="requests-hit"]').dataset.value === '${expected['requests-hit']}'`, 30_000);
    for (const [metric, value] of Object.entries(expected)) expect(await shown(tab, metric), metric).toBe(value);
    // Everything happened within the hour: the hour's history agrees with the counters.
    expect(await shown(tab, 'hour-hits')).toBe(expected['requests-hit']);
    expect(await shown(tab, 'hour-misses')).toBe(expected['requests-miss']);
    expect(await shown(tab, 'hour-bytes-saved')).toBe(expected['bytes-from-cache']);
    // The week also holds the history saved before this process started.
    expect(await shown(tab, 'week-requests')).toBe((await shown(tab, 'hour-requests')) + SEEDED_REQUESTS);

    const pulled = `${INTERCEPTED_HOST}/${image.repository}`;
    const manifestPulls = sum(requests, { route: 'manifest', status: '2xx' });
    expect(manifestPulls).toBeGreaterThanOrEqual(2);
    expect((await tableRows(tab, 'top-by-pulls')).find((row) => row[0] === pulled)?.[1]).toBe(String(manifestPulls));
    expect((await tableRows(tab, 'top-by-bytes'))[0]?.[0]).toBe(pulled);
    expect(await tableRows(tab, 'upstreams')).toContainEqual(expect.arrayContaining([INTERCEPTED_HOST]));

    // A fresh load renders the same numbers on the server, before any script ran.
    const again = await browser.newPage();
    await again.navigate(page);
    for (const [metric, value] of Object.entries(expected)) expect(await shown(again, metric), metric).toBe(value);
    await again.screenshot(join(ARTIFACTS, 'status-page.png'));
  }, 120_000);

  it('shows a hostile repository name and error message as text: nothing in them runs', async () => {
    const tab = await browser.newPage();
    await tab.navigate(page);
    const check = async (): Promise<void> => {
      expect(await tab.evaluate('window.__layoverXss')).toBeUndefined();
      expect(await tab.evaluate('document.querySelectorAll("img").length')).toBe(0);
      expect(await tab.evaluate('document.scripts.length')).toBe(1);
      const errors = await tableRows(tab, 'recent-errors');
      expect(errors).toContainEqual(expect.arrayContaining([HOSTILE_REPOSITORY, HOSTILE_MESSAGE]));
      expect((await tableRows(tab, 'top-by-pulls')).map((row) => row[0])).toContain(`${INTERCEPTED_HOST}/${HOSTILE_REPOSITORY}`);
    };
    await check(); // as the server rendered it
    await refreshedAfter(tab, await tab.evaluate<number>('Number(document.body.dataset.refreshed)'));
    await check(); // as the script rendered it from /status.json

    // And the Content-Security-Policy holds in the browser: an inline handler that got into the
    // page anyway is refused, while a listener on the same event fires.
    await tab.evaluate(`(() => {
      const img = document.createElement('img');
      img.setAttribute('onerror', 'window.__cspBroken = 1');
      img.addEventListener('error', () => (window.__errorSeen = 1));
      img.src = 'data:,x';
      document.body.append(img);
    })()`);
    await tab.waitFor('window.__errorSeen === 1');
    expect(await tab.evaluate('window.__cspBroken')).toBeUndefined();
    expect(tab.logs.some((entry) => /Content Security Policy/i.test(entry.text))).toBe(true);
  }, 60_000);

  it('is also at https://docker.proxy/, with the same Content-Security-Policy', async () => {
    const viaHttp = await curl(bench, page);
    const viaDockerProxy = await curl(bench, 'https://docker.proxy/');
    expect(viaDockerProxy.status, viaDockerProxy.stderr).toBe(200);
    expect(viaDockerProxy.headers['content-type']).toMatch(/^text\/html/);
    expect(viaDockerProxy.headers['content-security-policy']).toBe(viaHttp.headers['content-security-policy']);
    expect(viaHttp.headers['content-security-policy']).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    expect(viaHttp.headers['content-security-policy']).not.toMatch(/unsafe-inline|unsafe-eval/);
  });

  it('keeps its history across a restart, even one a browser’s idle connection holds up', async () => {
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'before-restart'));
    const before = await browser.newPage();
    await before.navigate(page);
    const hourRequests = await shown(before, 'hour-requests');
    expect(hourRequests).toBeGreaterThan(0);
    // A connection opened and never used, as a browser's preconnect is, keeps the listener's close
    // waiting: the stop ends in the bench's SIGKILL, before any onClose hook ran.
    const idle = bench.sandbox.spawn('bash', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/80 && echo open && sleep 120']);
    await new Promise((resolve, reject) => {
      idle.stdout?.once('data', resolve);
      idle.once('exit', reject);
    });
    await bench.layover!.stop();
    idle.kill('SIGKILL');
    await bench.startLayover({ dataDir });
    const after = await browser.newPage();
    await after.navigate(page);
    expect(await shown(after, 'requests-hit')).toBe(0); // this process has served nothing yet
    expect(await shown(after, 'hour-requests')).toBe(hourRequests);
  }, 60_000);
});
