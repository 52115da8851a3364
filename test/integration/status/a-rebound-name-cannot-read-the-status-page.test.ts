/**
 * DNS rebinding: a page of another site points its own name at Layover's address and reads, as its own
 * origin, what a browser inside the network reaches. While CLIENT_AUTH=none the status page and /metrics
 * are open to anyone who may pull, so the name in Host decides: they are answered only under Layover's
 * own names (addresses, single-label and private names such as *.svc, docker.proxy, its hostname,
 * ADMIN_HOSTNAMES), never under another name of a public domain.
 *
 * Debian's headless Chromium, its resolver told that the attacker's name is 127.0.0.1 (what the
 * attacker's DNS answers after the page has loaded); Layover in this process.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type Chromium } from '../../helpers/chromium.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

const REBOUND = 'attacker.example.com';
let browser: Chromium;
let strict: RunningLayover;
let named: RunningLayover;

beforeAll(async () => {
  strict = await startLayover();
  named = await startLayover({ 'admin-hostnames': REBOUND });
  browser = await launchChromium({ hostResolverRules: `MAP ${REBOUND} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost` });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await strict?.close();
  await named?.close();
});

/** What a script of the page at `origin` reads from `path` of the same origin: status and body. */
async function readFromPage(origin: string, path: string): Promise<{ status: number; body: string }> {
  const tab = await browser.newPage();
  // Layover's own /healthz stands in for the attacker's page, loaded before the name was rebound.
  await tab.navigate(`${origin}/healthz`);
  return tab.evaluate(`fetch(${JSON.stringify(path)}).then(async (r) => ({ status: r.status, body: await r.text() }))`);
}

const port = (layover: RunningLayover): number => layover.addresses.http!.port;

describe('a browser', () => {
  it('under a name that is not Layover\'s reads neither the status numbers nor /metrics', async () => {
    for (const path of ['/status.json', '/metrics', '/']) {
      const read = await readFromPage(`http://${REBOUND}:${port(strict)}`, path);
      expect(read.status, path).toBe(403);
      expect(JSON.parse(read.body), path).toMatchObject({ errors: [{ code: 'DENIED' }] });
    }
  });

  it('under Layover\'s address, or a name in ADMIN_HOSTNAMES, reads them', async () => {
    const byAddress = await readFromPage(`http://127.0.0.1:${port(strict)}`, '/status.json');
    expect(byAddress.status).toBe(200);
    expect(JSON.parse(byAddress.body)).toHaveProperty('metrics');
    const byName = await readFromPage(`http://${REBOUND}:${port(named)}`, '/metrics');
    expect(byName.status).toBe(200);
    expect(byName.body).toContain('layover_requests_total');
  });
});

it('a scraper is refused under that name too (a script may send what a scraper sends), answered under a private one', async () => {
  const scrape = (host: string): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const asked = request({ host: '127.0.0.1', port: port(strict), path: '/metrics', headers: { host, 'user-agent': 'Prometheus/3.0.0' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      asked.on('error', reject).end();
    });
  expect(await scrape(`${REBOUND}:${port(strict)}`)).toBe(403);
  expect(await scrape(`layover.monitoring.svc:${port(strict)}`)).toBe(200);
});
