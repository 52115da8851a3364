import { afterEach, describe, expect, it } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover: Docker Hub's budget as DockerHubBudget read it from Docker Hub's answers' headers
// (fed here as the upstream request does, with the headers of two answers) is on the status page,
// each account and source address with its remaining pulls, marked low below DOCKER_HUB_BUDGET_LOW.
const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
});

describe('the status page’s Docker Hub budget', () => {
  it('shows each reading, low ones marked, and hides the section while there is none', async () => {
    const layover = await startLayover({}, { DOCKER_HUB_BUDGET_LOW: '10' });
    running.push(layover);
    const page = async (path: string): Promise<string> => (await fetch(`http://127.0.0.1:${layover.addresses.http!.port}${path}`)).text();
    expect(await page('/')).toMatch(/<section data-shown-with="docker-hub" hidden>/);

    const budget = layover.app.operations.dockerHubBudget;
    budget.observe('anonymous', { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '4;w=21600', 'docker-ratelimit-source': '192.0.2.7' });
    const rows = (JSON.parse(await page('/status.json')) as { tables: Record<string, string[][]> }).tables['docker-hub'];
    const readings = budget.readings();
    expect(readings.length).toBeGreaterThan(0);
    expect(rows).toHaveLength(readings.length);
    const reading = readings[0]!;
    expect(rows![0]).toEqual([reading.account, reading.source || '–', `${reading.remaining} / ${reading.limit}`, '6 h', 'low: cached tags first', expect.any(String)]);
    expect(reading.remaining).toBe(4);
    const html = await page('/');
    expect(html).toMatch(/<section data-shown-with="docker-hub">/);
    expect(html).toContain('4 / 100');
  });
});
