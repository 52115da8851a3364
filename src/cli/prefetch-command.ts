import type { LayoverConfig } from '../config/layover-config.js';
import { ConfigError } from '../config/config-error.js';
import { InvalidReferenceError, parsePlatform } from '../prefetch/image-reference.js';
import type { PrefetchLine, PrefetchSummary, PrefetchTotals } from '../prefetch/prefetch-progress.js';
import { adminEndpoint, callAdmin } from './admin-client.js';

export interface PrefetchCommandOptions {
  referrers: boolean;
  platform: string | undefined;
}

/** Where progress goes: a terminal gets one line redrawn in place, anything else a line per finished item. */
export interface ProgressOutput {
  write(text: string): void;
  readonly isTTY?: boolean;
}

/**
 * `layover prefetch IMAGE...`: asks the running Layover's admin API to pull the images (POST
 * /admin/prefetch) and shows its NDJSON progress as it comes. Exit code 1 when any image failed;
 * a refusal or no running Layover is an error naming what to do.
 */
export async function prefetchCommand(config: LayoverConfig, images: readonly string[], options: PrefetchCommandOptions, out: ProgressOutput = process.stdout, err: ProgressOutput = process.stderr): Promise<void> {
  if (options.platform !== undefined) {
    try {
      parsePlatform(options.platform);
    } catch (error) {
      if (error instanceof InvalidReferenceError) throw new ConfigError(`--platform: ${error.message}`);
      throw error;
    }
  }
  const notRunning = (where: string): ConfigError =>
    new ConfigError(
      `prefetch: no Layover is running ${where}: start it (layover serve), or give this command the configuration it runs with (--config, --data-dir, --http or ADMIN_LISTEN, ADMIN_TOKEN_FILE)`,
    );
  const endpoint = await adminEndpoint(config);
  if (!endpoint) throw notRunning(`with this configuration (no admin token in ${config.admin.tokenFile}, or no HTTP or admin listener)`);
  const body = { images, referrers: options.referrers, ...(options.platform === undefined ? {} : { platform: options.platform }) };
  const response = await callAdmin(endpoint, 'POST', '/admin/prefetch', body);
  if (!response) throw notRunning(`at ${endpoint.baseUrl}`);
  if (!response.ok || !response.body) throw new Error(`prefetch: the admin API at ${endpoint.baseUrl} answered ${response.status}: ${await refusalText(response)}`);

  const view = new ProgressView(out, err);
  let summary: PrefetchSummary | null = null;
  for await (const line of ndjsonLines(response.body)) {
    view.show(line);
    if (line.event === 'summary') summary = line;
  }
  view.finish(summary);
  if (!summary || summary.failed.length > 0) process.exitCode = 1;
}

async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<PrefetchLine> {
  const decoder = new TextDecoder();
  let partial = '';
  for await (const chunk of body) {
    const lines = (partial + decoder.decode(chunk, { stream: true })).split('\n');
    partial = lines.pop() ?? '';
    for (const text of lines) if (text.trim() !== '') yield JSON.parse(text, printableStrings) as PrefetchLine;
  }
  if (partial.trim() !== '') yield JSON.parse(partial, printableStrings) as PrefetchLine;
}

/**
 * A JSON reviver that makes every string safe for a terminal: the lines carry what registries sent
 * (their error messages), and an escape sequence in one would be run by the operator's terminal.
 */
function printableStrings(_key: string, value: unknown): unknown {
  return typeof value === 'string' ? printable(value) : value;
}

/** Control characters (C0, DEL, C1) shown as U+FFFD. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd');
}

async function refusalText(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const first = (JSON.parse(text, printableStrings) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
    if (first?.code) return `${first.code}: ${first.message ?? ''}`;
  } catch {
    // not an OCI error: shown as it came, made printable
  }
  return printable(text.slice(0, 300)) || '(no body)';
}

const size = (bytes: number): string => (bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);
const short = (digest: string): string => digest.slice(0, 19);

/** Renders progress lines: a progress bar redrawn with \r on a terminal, one line per finished item elsewhere. */
class ProgressView {
  #bar = '';
  #current = '';

  constructor(
    private readonly out: ProgressOutput,
    private readonly err: ProgressOutput,
  ) {}

  show(line: PrefetchLine): void {
    switch (line.event) {
      case 'blob-started':
        this.#current = `${line.image} ${short(line.digest)}`;
        break;
      case 'blob-done':
        if (!this.out.isTTY) this.out.write(`blob ${line.digest} ${line.cached ? 'already cached' : size(line.bytes)} (${line.image})\n`);
        break;
      case 'image-done':
        this.#print(`done   ${line.image}: ${line.manifests} manifests, ${line.blobs} blobs, ${size(line.bytes)} fetched\n`);
        break;
      case 'image-failed':
        this.#clearBar();
        this.err.write(`failed ${line.image}: ${line.error}\n`);
        break;
      case 'progress':
        if (line.current) this.#current = `${line.current.image} ${short(line.current.digest)}`;
        break;
      default:
        break;
    }
    if ('totals' in line && line.event !== 'summary') this.#drawBar(line.totals);
  }

  finish(summary: PrefetchSummary | null): void {
    this.#clearBar();
    if (!summary) return void this.err.write('prefetch: the answer ended before its summary (Layover stopped?)\n');
    const { ok, failed, stopped, totals } = summary;
    this.out.write(`prefetched ${ok.length} of ${ok.length + failed.length} images, ${size(totals.bytes)} fetched${stopped ? ` (stopped: ${stopped})` : ''}\n`);
  }

  #print(text: string): void {
    this.#clearBar();
    this.out.write(text);
  }

  #drawBar(totals: PrefetchTotals): void {
    if (!this.out.isTTY) return;
    this.#bar = `[${totals.imagesDone}/${totals.images} images] ${totals.blobsDone}/${totals.blobs} blobs ${size(totals.bytes)}  ${this.#current}`.slice(0, 160);
    this.out.write(`\r${this.#bar}\x1b[K`);
  }

  #clearBar(): void {
    if (!this.out.isTTY || this.#bar === '') return;
    this.out.write('\r\x1b[K');
    this.#bar = '';
  }
}
