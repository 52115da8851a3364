import { createHash } from 'node:crypto';
import { SINCE_START_RESULTS, WINDOWS, type StatusView } from './status-view.js';

/** How often the page asks /status.json for fresh numbers. */
export const REFRESH_MS = 5_000;

// The page's only script: it fetches the view and writes every value with textContent (never as
// HTML), into the elements named by data-metric and data-table.
const SCRIPT = `(() => {
  const render = (view) => {
    for (const element of document.querySelectorAll('[data-metric]')) {
      const metric = view.metrics[element.dataset.metric];
      if (!metric) continue;
      element.textContent = metric.text;
      if (metric.value === null) element.removeAttribute('data-value');
      else element.dataset.value = String(metric.value);
    }
    for (const body of document.querySelectorAll('tbody[data-table]')) {
      const rows = view.tables[body.dataset.table] || [];
      body.replaceChildren(...rows.map((cells) => {
        const row = document.createElement('tr');
        for (const cell of cells) {
          const td = document.createElement('td');
          td.textContent = String(cell);
          row.append(td);
        }
        return row;
      }));
    }
    for (const section of document.querySelectorAll('[data-shown-with]')) section.hidden = (view.tables[section.dataset.shownWith] || []).length === 0;
    document.body.dataset.refreshed = String(view.generatedAt);
  };
  const refresh = () =>
    fetch('status.json', { cache: 'no-store', credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then((response) => {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then((view) => {
        render(view);
        document.body.dataset.stale = 'false';
      })
      .catch(() => {
        document.body.dataset.stale = 'true';
      })
      .finally(() => setTimeout(refresh, ${REFRESH_MS}));
  setTimeout(refresh, ${REFRESH_MS});
})();`;

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.note{color:#666}.cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em .9em;min-width:11em}
.card b{display:block;font-size:1.5em}.card small{color:#666}
table{border-collapse:collapse;background:#fff;min-width:30em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td{word-break:break-all;max-width:40em}th{background:#f0f0f0}
body[data-stale=true] .cards{opacity:.5}`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * Only the page's own script and style run: by their hashes, so that text someone managed to get
 * into the page could not run even if it escaped the escaping. The script talks only to this origin.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function metric(view: StatusView, key: string): string {
  const shown = view.metrics[key];
  const value = shown?.value === null || shown === undefined ? '' : ` data-value="${escapeHtml(String(shown.value))}"`;
  return `<span data-metric="${escapeHtml(key)}"${value}>${escapeHtml(shown?.text ?? '–')}</span>`;
}

function card(view: StatusView, title: string, key: string): string {
  return `<div class="card"><small>${escapeHtml(title)}</small><b>${metric(view, key)}</b></div>`;
}

function table(view: StatusView, name: string, headings: string[]): string {
  const head = headings.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const rows = (view.tables[name] ?? []).map((cells) => `<tr>${cells.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody data-table="${escapeHtml(name)}">${rows}</tbody></table>`;
}

/** A section shown only while its table has rows (replicas, the Docker Hub budget). */
function optional(view: StatusView, name: string, body: string): string {
  const hidden = (view.tables[name] ?? []).length === 0 ? ' hidden' : '';
  return `<section data-shown-with="${escapeHtml(name)}"${hidden}>${body}</section>`;
}

/** The whole page, server-rendered from the view; every value passes through escapeHtml. */
export function renderStatusPage(view: StatusView): string {
  const windows = WINDOWS.map((w) => `<h2>Last ${w}</h2><div class="cards">${[
    card(view, 'hit ratio', `${w}-hit-ratio`),
    card(view, 'bytes saved (served from cache)', `${w}-bytes-saved`),
    card(view, 'bytes fetched upstream', `${w}-bytes-from-upstream`),
    card(view, 'registry requests', `${w}-requests`),
    card(view, 'hits', `${w}-hits`),
    card(view, 'misses', `${w}-misses`),
    card(view, 'errors', `${w}-errors`),
    card(view, 'evictions', `${w}-evictions`),
  ].join('')}</div>`).join('');
  const sinceStart = [
    ...SINCE_START_RESULTS.map((r) => card(view, `requests: ${r}`, `requests-${r}`)),
    card(view, 'bytes from cache', 'bytes-from-cache'),
    card(view, 'bytes from upstream', 'bytes-from-upstream'),
    card(view, 'bytes from peers', 'bytes-from-peer'),
  ].join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>Layover status</title><style>${STYLE}</style></head>
<body data-refreshed="${view.generatedAt}">
<h1>Layover</h1>
<p class="note">Replica ${escapeHtml(view.replica)} · updated ${metric(view, 'generated-at')} · history since ${metric(view, 'history-since')} · refreshes every ${REFRESH_MS / 1000} s</p>
${windows}
<h2>Since this process started (as in /metrics)</h2><div class="cards">${sinceStart}</div>
<h2>Cache</h2><div class="cards">${[
    card(view, 'size', 'cache-bytes'),
    card(view, 'cap (CACHE_MAX_SIZE)', 'cache-max-bytes'),
    card(view, 'used', 'cache-used'),
    card(view, 'blobs', 'cache-entries'),
    card(view, 'downloads in flight', 'fills-in-flight'),
    card(view, 'evictions since start', 'evictions-total'),
    card(view, 'evicted since start', 'evicted-bytes-total'),
    card(view, 'evicted in the last day', 'day-evicted-bytes'),
  ].join('')}</div>
${optional(view, 'replicas', `<h2>Replicas (seen in the last minutes)</h2>${table(view, 'replicas', ['replica', 'last seen', 'hit ratio hour / day / week', 'saved today', 'requests last hour', 'errors last hour', 'cache / cap'])}`)}
<h2>Upstream health</h2>${table(view, 'upstreams', ['registry', 'requests', 'errors by cause', 'mean latency', 'p95 latency'])}
${optional(view, 'docker-hub', `<h2>Docker Hub budget</h2>${table(view, 'docker-hub', ['account', 'source address', 'remaining / limit', 'window', 'state', 'read at'])}`)}
<h2>Top images by pulls</h2>${table(view, 'top-by-pulls', ['image', 'pulls', 'bytes', 'last pulled'])}
<h2>Top images by bytes</h2>${table(view, 'top-by-bytes', ['image', 'bytes', 'pulls', 'last pulled'])}
<h2>Recent errors</h2>${table(view, 'recent-errors', ['time', 'registry', 'repository', 'route', 'status', 'message'])}
<script>${SCRIPT}</script>
</body></html>
`;
}
