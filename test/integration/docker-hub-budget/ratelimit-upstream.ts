/**
 * A fixture upstream playing Docker Hub (registry-1.docker.io) for the budget tests. It is a fixture
 * because no real program sends Docker Hub's `RateLimit-Limit` / `RateLimit-Remaining` /
 * `docker-ratelimit-source` headers or counts pulls: the distribution registry does neither. The
 * manifests it serves are a real image's, taken from the distribution registry (see
 * ./real-manifests.ts); Layover, its resolver (dnsmasq), TLS and the clients are real.
 *
 * Like Docker Hub, every manifest GET spends one pull of the account's budget (anonymous, or the
 * Basic user) and a HEAD spends none; with nothing left a GET answers 429 with Retry-After. Every
 * answer carries the account's budget headers, unless the test replaces them (`headers`).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa } from '../../bench/test-ca.js';
import { HeldAnswers } from '../../helpers/held-answers.js';
import { listenWithLoopbackTwin, releaseLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import type { RealManifest } from './real-manifests.js';

export const DOCKER_HUB_HOST = 'registry-1.docker.io';
export const FIXTURE_ADDRESS = '127.0.0.9';
export const BUDGET_LIMIT = 100;
export const RETRY_AFTER_SECONDS = '3600';

export interface SeenRequest {
  method: string;
  path: string;
  account: string;
}

export interface RatelimitUpstream {
  port: number;
  caFile: string;
  /** Every request, oldest first. */
  seen: SeenRequest[];
  /** Manifest GETs and HEADs of `path` (or all manifest requests) so far. */
  manifestRequests(method: 'GET' | 'HEAD', path?: string): SeenRequest[];
  /** Points `tag` at `digest` (a manifest the fixture serves). */
  tag(tag: string, digest: string): void;
  /** The account's remaining pulls (anonymous, or a Basic user). */
  setRemaining(account: string, remaining: number): void;
  remaining(account: string): number;
  /** Replaces the budget headers of every answer (values may be lists: repeated headers); null: the real ones again. */
  headers: Record<string, string | string[]> | null;
  /** Manifest HEADs wait while `heads.holding` (heads.start() ... heads.release()). */
  heads: HeldAnswers;
  close(): Promise<void>;
}

export interface RatelimitUpstreamOptions {
  manifests: RealManifest[];
  tags: Record<string, string>;
  /** `/v2/` answers 401 with a Basic challenge, so Layover sends its configured credential. */
  basicChallenge?: boolean;
}

export async function startRatelimitUpstream(options: RatelimitUpstreamOptions): Promise<RatelimitUpstream> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-ratelimit-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('docker-hub', [DOCKER_HUB_HOST]);
  const byDigest = new Map(options.manifests.map((m) => [m.digest, m]));
  const tags = new Map(Object.entries(options.tags));
  const budgets = new Map<string, number>();
  const seen: SeenRequest[] = [];

  const accountOf = (authorization: string | undefined): string => {
    const basic = /^Basic (.+)$/i.exec(authorization ?? '');
    return basic ? Buffer.from(basic[1]!, 'base64').toString('utf8').split(':')[0]! : 'anonymous';
  };
  const remainingOf = (account: string): number => budgets.get(account) ?? BUDGET_LIMIT;

  const upstream: RatelimitUpstream = {
    port: 0,
    caFile: ca.certFile,
    seen,
    manifestRequests: (method, path) => seen.filter((r) => r.method === method && r.path.includes('/manifests/') && (path === undefined || r.path === path)),
    tag: (tag, digest) => void tags.set(tag, digest),
    setRemaining: (account, remaining) => void budgets.set(account, remaining),
    remaining: remainingOf,
    headers: null,
    heads: new HeldAnswers(),
    close: async () => {},
  };

  const server = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    const path = req.url ?? '';
    const account = accountOf(req.headers.authorization);
    seen.push({ method: req.method ?? '', path, account });
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    const budgetHeaders = (): Record<string, string | string[]> =>
      upstream.headers ?? { 'ratelimit-limit': `${BUDGET_LIMIT};w=21600`, 'ratelimit-remaining': `${remainingOf(account)};w=21600`, 'docker-ratelimit-source': account === 'anonymous' ? '127.0.0.1' : '6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9' };
    const error = (status: number, code: string, extra: Record<string, string> = {}): void => {
      const body = JSON.stringify({ errors: [{ code, message: `the fixture answers ${status}` }] });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path === '/v2/') {
      if (options.basicChallenge && account === 'anonymous') return error(401, 'UNAUTHORIZED', { 'www-authenticate': 'Basic realm="docker-hub-fixture"' });
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    }
    const match = /^\/v2\/[a-z0-9/._-]+\/manifests\/([^/?]+)$/.exec(path);
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) return error(404, 'NOT_FOUND');
    const reference = decodeURIComponent(match[1]!);
    const manifest = byDigest.get(reference.includes(':') ? reference : (tags.get(reference) ?? ''));
    if (!manifest) return error(404, 'MANIFEST_UNKNOWN');
    if (req.method === 'GET') {
      if (remainingOf(account) === 0) {
        for (const [name, value] of Object.entries(budgetHeaders())) res.setHeader(name, value);
        return error(429, 'TOOMANYREQUESTS', { 'retry-after': RETRY_AFTER_SECONDS });
      }
      budgets.set(account, remainingOf(account) - 1);
    }
    const answer = (): void => {
      for (const [name, value] of Object.entries(budgetHeaders())) res.setHeader(name, value);
      res.writeHead(200, { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length), 'docker-content-digest': manifest.digest });
      res.end(req.method === 'HEAD' ? undefined : manifest.bytes);
    };
    if (req.method === 'HEAD' && upstream.heads.holding) return upstream.heads.hold(answer);
    answer();
  });
  upstream.port = await listenWithLoopbackTwin(server, FIXTURE_ADDRESS);
  upstream.close = () =>
    new Promise<void>((resolve) => {
      upstream.heads.release();
      void releaseLoopbackTwin(upstream.port);
      server.close(() => resolve());
      server.closeAllConnections();
      rmSync(dir, { recursive: true, force: true });
    });
  return upstream;
}
