import { readFileSync, rmSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { startLayover } from '../../helpers/start-layover.js';
import { examplePath, yamlDocuments } from '../examples/example-files.js';
import { parseExposition } from './exposition.js';

// examples/prometheus/prometheus.yml and examples/grafana/layover-dashboard.json against a fresh
// Layover's /metrics: a dashboard built on a name that is not exported shows nothing, silently.

interface Dashboard {
  title: string;
  uid: string;
  panels: Array<{ title: string; targets?: Array<{ expr?: string }> }>;
  templating: { list: Array<{ name: string }> };
}

const dashboard = JSON.parse(readFileSync(examplePath('grafana', 'layover-dashboard.json'), 'utf8')) as Dashboard;
const scrapeText = readFileSync(examplePath('prometheus', 'prometheus.yml'), 'utf8');
const expressions = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? ''));
/** Series names in PromQL or YAML: Layover's own and the process metrics prom-client adds. */
const namesIn = (text: string): string[] => [...text.matchAll(/\b(?:layover|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]);

/** Every name a fresh app's /metrics declares (`# TYPE`), with the `_bucket`, `_sum` and `_count` of its histograms. */
async function exportedNames(): Promise<Set<string>> {
  const layover = await startLayover();
  onTestFinished(async () => {
    await layover.close();
    rmSync(layover.dataDir, { recursive: true, force: true });
  });
  const res = await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  parseExposition(text);
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

describe('the Prometheus and Grafana examples', () => {
  it('name only series a fresh Layover exports', async () => {
    const exported = await exportedNames();
    const named = [...new Set([...expressions.flatMap(namesIn), ...namesIn(scrapeText)])];
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((name) => !exported.has(name))).toEqual([]);
  });

  it('the dashboard shows every Layover series', async () => {
    const exported = await exportedNames();
    const families = [...exported].filter((name) => name.startsWith('layover_') && !/_(bucket|sum|count)$/.test(name));
    const shown = new Set(expressions.flatMap(namesIn).map((name) => name.replace(/_bucket$/, '')));
    expect(families.filter((family) => !shown.has(family))).toEqual([]);
  });

  it('the dashboard is a Grafana dashboard: every panel has a query, on the chosen data source and replicas', () => {
    expect(dashboard).toMatchObject({ title: 'Layover', uid: 'layover' });
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(10);
    for (const panel of dashboard.panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const expr of panel.targets!.map((t) => t.expr!)) expect(expr, panel.title).toContain('instance=~"$instance"');
    }
    const titles = dashboard.panels.map((panel) => panel.title).join('\n');
    for (const topic of [/hit ratio/i, /bytes saved/i, /cache result/i, /latency/i, /errors/i, /fills in flight/i, /cap/i, /evictions/i, /dns/i, /tls/i, /docker hub/i]) expect(titles).toMatch(topic);
  });

  it('the scrape configuration scrapes the HTTP listener, and ADMIN_LISTEN with the admin token from a file', () => {
    const file = examplePath('prometheus', 'prometheus.yml');
    expect(yamlDocuments(file, '1.1')).toEqual(yamlDocuments(file, '1.2'));
    const config = parse(scrapeText) as { scrape_configs: Array<{ job_name: string; metrics_path: string; authorization?: { type: string; credentials_file: string }; static_configs: Array<{ targets: string[] }> }> };
    const [http, admin] = config.scrape_configs;
    expect(http).toMatchObject({ job_name: 'layover', metrics_path: '/metrics' });
    expect(http!.authorization).toBeUndefined();
    expect(admin).toMatchObject({ job_name: 'layover-admin', metrics_path: '/metrics', authorization: { type: 'Bearer', credentials_file: expect.stringMatching(/^\//) } });
    // The admin listener's port is the one the comment's ADMIN_LISTEN names.
    const port = /ADMIN_LISTEN=[\d.]+:(\d+)/.exec(scrapeText)?.[1];
    expect(admin!.static_configs[0]!.targets[0]).toMatch(new RegExp(`:${port}$`));
  });
});
