import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import { cameThroughConnect } from '../connect-proxy/connect-authority.js';
import { completedRequest, recordCompleted, requestLine, type RequestLogFields } from '../log/request-log.js';
import { RequestLineTemplate } from '../log/request-line.js';
import type { BlobEntry } from '../cache/blob-cache.js';
import type { CompletedRequest, Metrics } from '../metrics/metrics.js';
import type { RequestOutcome } from '../metrics/request-outcome.js';
import type { ServingState } from '../net/serving-state.js';
import type { SilentConnections } from '../net/silent-connections.js';
import type { Digest } from '../registry/digest.js';
import { blobHeaders } from './blob-headers.js';
import { type HitTarget, HitTargets } from './hit-targets.js';
import { cachedManifestHeaders, lookUpTag, manifestEntry, MAX_MANIFEST_BYTES } from './manifest-route.js';
import type { RegistryProxyContext } from './proxy-context.js';
import { checkRequestHead } from './request-guards.js';
import type { RoutingTables } from './request-target.js';
import { SMALL_BLOB_BYTES } from './small-blob.js';

/** What the hit path needs besides the registry routes' context. */
export interface HitPathHost {
  /** While stopping, answers carry `Connection: close`: fastify's path adds it. */
  readonly state: ServingState;
  /** The process's request IDs (src/log/request-ids.ts), shared with fastify's requests. */
  readonly requestId: () => string;
  readonly logger: FastifyBaseLogger;
  /** The listener's name in /metrics. */
  readonly listener: string;
  /** Told of connections whose requests are answered before Node's HTTP server sees them (./hit-connections.ts). */
  readonly silentConnections?: SilentConnections;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** What the hit path reads of a request: an IncomingMessage, or a head read off the socket (./hit-connections.ts). */
export type HitRequest = Pick<IncomingMessage, 'method' | 'url' | 'headers' | 'rawHeaders' | 'httpVersionMajor' | 'socket'>;

/** What a hit's answer says but its body: made once for a target, a method, an access and a digest. */
interface HitParts {
  readonly kind: 'manifest' | 'blob';
  readonly headers: Record<string, string | number>;
  readonly annotated: RequestLogFields;
}

/**
 * What the hit path answers to a request, but its body: headers and log fields. A target the hit
 * path answers again and again (HitTargets keeps it) gets the same HitAnswer while the method, the
 * access the check gave and the digest stay the same (the same digest, the same bytes): its headers,
 * its request line (but for the duration) and what /metrics counts are made once, not per request.
 * It holds no bytes: a kept answer must not keep a body the cache's memory has let go.
 */
export class HitAnswer implements HitParts {
  readonly kind: HitParts['kind'];
  readonly headers: Record<string, string | number>;
  readonly annotated: RequestLogFields;
  /** Made for: the access the check gave, and the digest answered. */
  readonly access: string;
  readonly digest: Digest;
  /** Given to more than one request: counted in batches (Metrics.tallyRequest). */
  readonly shared: boolean;
  #line: RequestLineTemplate | undefined;
  #counted: CompletedRequest | undefined;
  #head: Buffer | undefined;

  constructor(parts: HitParts, access: string, digest: Digest, shared: boolean) {
    ({ kind: this.kind, headers: this.headers, annotated: this.annotated } = parts);
    this.access = access;
    this.digest = digest;
    this.shared = shared;
  }

  /** The request line of `req` but for its duration: the same for every request it answers (same method, Host and target). */
  line(req: HitRequest): RequestLineTemplate {
    return (this.#line ??= new RequestLineTemplate(requestLine(req.method!, req.headers.host, req.url!, 200, this.headers['content-length'], 0, this.annotated)));
  }

  /**
   * The status line and the headers as Node's server writes them (latin1), the same for every request
   * it answers: a head is then only what changes per request (request ID, Date, Connection) after it.
   */
  get head(): Buffer {
    if (this.#head) return this.#head;
    let head = 'HTTP/1.1 200 OK\r\n';
    for (const name in this.headers) head += `${name}: ${this.headers[name]}\r\n`;
    // Memory of its own: a slice of Node's shared 8 KiB pool would keep the whole slab for as long as the answer is kept.
    const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(head, 'latin1'));
    bytes.write(head, 0, 'latin1');
    return (this.#head = bytes);
  }

  /** The outcome of a request it answered, as the request log counts it. */
  get outcome(): RequestOutcome {
    const bytes = typeof this.annotated.bytes === 'number' ? this.annotated.bytes : 0;
    return { route: this.kind, cache: 'hit', bytes, source: bytes > 0 ? 'cache' : undefined };
  }

  /** What /metrics and the status page count of a request it answered in full. */
  counted(metrics: Metrics, listener: string): CompletedRequest {
    return (this.#counted ??= completedRequest(metrics, listener, { status: 200 }, this.annotated, this.outcome, undefined));
  }
}

/** An answer the hit path can give at once: headers and log fields, and the body (none for a HEAD) from the cache's memory. */
export interface Hit {
  readonly answer: HitAnswer;
  readonly body: Buffer | undefined;
}

/**
 * Answers the most frequent requests a registry proxy gets, a GET or HEAD of a cached manifest (by
 * digest, or by a tag ENABLE_MANIFEST_CACHE keeps fresh) and of a small blob the cache holds in
 * memory, before fastify builds its request, reply and hooks around them: they cost a cached manifest
 * about 40% of its CPU (bench/README.md). Only a hit decided with nothing to wait for is answered
 * here: the head passes the same checks (checkRequestHead), the same routing decides where it goes
 * (routeRequest, kept per Host and target in HitTargets), the same access check already knows the
 * answer (ReadAccess.allowedNow), the bytes are in memory, and the answer has the same headers, log
 * line and metrics as on fastify's path.
 * Anything else (a miss, a tag to ask upstream about, a range, a body, client authentication,
 * HTTP/2, a CONNECT tunnel, a stop under way, an access check to make) goes to fastify unchanged.
 * HitConnections (./hit-connections.ts) asks it first, off a connection's bytes, before Node's HTTP
 * server has the connection; install() answers on the connections Node's server has.
 */
export class HitPath {
  readonly #ctx: RegistryProxyContext;
  readonly #targets: HitTargets;
  readonly #host: HitPathHost;
  /** The last answer of each kept target, by method. */
  readonly #answers = new WeakMap<HitTarget, { GET?: HitAnswer; HEAD?: HitAnswer }>();

  constructor(ctx: RegistryProxyContext, tables: RoutingTables, host: HitPathHost) {
    this.#ctx = ctx;
    this.#targets = new HitTargets(tables);
    this.#host = host;
  }

  /**
   * Puts the hit path in front of fastify on `server` (an HTTP/1.1 TLS listener): fastify's handler,
   * the first 'request' listener (added when fastify created the server), runs only for what the hit
   * path does not answer; the listeners after it (connection tracking) still see every request.
   */
  install(server: Server): void {
    const [fastifyHandler, ...others] = server.listeners('request') as Handler[];
    if (!fastifyHandler) throw new Error('hit path: the server has no request handler to put it in front of');
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.answer(req, res)) fastifyHandler.call(server, req, res);
    });
    for (const listener of others) server.on('request', listener);
  }

  /** True when the request was answered here; false (nothing written) when fastify must take it. */
  answer(req: IncomingMessage, res: ServerResponse): boolean {
    const started = performance.now();
    const hit = this.hitFor(req);
    if (!hit) return false;
    const requestId = this.nextRequestId();
    res.writeHead(200, { ...hit.answer.headers, 'x-request-id': requestId });
    res.end(hit.body);
    const done = (error?: Error): void => {
      res.removeListener('finish', done);
      res.removeListener('error', done);
      this.completed(req, hit, requestId, started, error);
    };
    res.on('finish', done);
    res.on('error', done);
    return true;
  }

  /** The next request ID of the process (x-request-id, the log line's reqId). */
  nextRequestId(): string {
    return this.#host.requestId();
  }

  /** The answer to `req` if it is the hit path's to give now; undefined when fastify must take it. */
  hitFor(req: HitRequest): Hit | undefined {
    const { method, url, headers } = req;
    if ((method !== 'GET' && method !== 'HEAD') || url === undefined || !url.startsWith('/v2/')) return undefined;
    if (req.httpVersionMajor !== 1 || this.#host.state.stopping || this.#ctx.clientAuth) return undefined;
    if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined || headers.range !== undefined) return undefined;
    if (cameThroughConnect(req.socket)) return undefined;
    const head = checkRequestHead(req.rawHeaders, url);
    if (!head.ok || head.url !== undefined) return undefined;
    const target = this.#targets.of(headers.host, url);
    if (!target) return undefined;
    const { upstream, route } = target;
    if (route.kind === 'manifest') {
      const { reference } = route;
      if ('digest' in reference) return this.#manifest(req, target, manifestEntry(this.#ctx, reference.digest), reference.digest);
      // By tag: only while ENABLE_MANIFEST_CACHE's tier keeps it (serveByTag's hit).
      const tag = lookUpTag(this.#ctx, upstream, route.name, reference.tag, req.headers.accept);
      return tag.fresh ? this.#manifest(req, target, tag.cached, reference.tag) : undefined;
    }
    return this.#blob(req, target, route.digest);
  }

  /** As serveManifest answers a cached manifest (by digest, or by a fresh tag) from the cache's memory (sendCached); `ref` as it was asked for. */
  #manifest(req: HitRequest, target: HitTarget, entry: BlobEntry | undefined, ref: string): Hit | undefined {
    if (!entry || entry.size > MAX_MANIFEST_BYTES) return undefined;
    const { digest } = entry;
    const { upstream, route, via } = target;
    const access = this.#ctx.readAccess.allowedNow(upstream, route.name, { kind: 'manifest', digest }, req.headers.authorization);
    const held = access === undefined ? undefined : this.#ctx.cache.heldBytes(digest);
    if (!held) return undefined;
    const head = req.method === 'HEAD';
    const answer = this.#answer(target, head, access!, digest, () => ({
      kind: 'manifest',
      headers: cachedManifestHeaders(digest, held.bytes),
      annotated: { ...via, access, registry: upstream.registry, repo: route.name, ref, cache: 'hit', bytes: head ? 0 : held.bytes.length },
    }));
    return { answer, body: head ? undefined : held.bytes };
  }

  /** As serveBlob answers a cached blob: a HEAD from the index, a whole GET of a small one from memory (sendSmallBlob). */
  #blob(req: HitRequest, target: HitTarget, digest: Digest): Hit | undefined {
    const head = req.method === 'HEAD';
    const { config, cache, readAccess } = this.#ctx;
    const { upstream, route, via } = target;
    // With pushes on a HEAD asks upstream; with presigned redirects a GET is a redirect.
    if (head ? config.allowPush : config.blobRedirect === 'presigned') return undefined;
    const entry = cache.stat(digest);
    if (!entry || (!head && entry.size > SMALL_BLOB_BYTES)) return undefined;
    const access = readAccess.allowedNow(upstream, route.name, { kind: 'blob', digest }, req.headers.authorization);
    if (access === undefined) return undefined;
    const annotated = (bytes: number): RequestLogFields => ({ ...via, access, registry: upstream.registry, repo: route.name, digest, cache: 'hit', bytes });
    if (head) return { answer: this.#answer(target, head, access, digest, () => ({ kind: 'blob', headers: blobHeaders(digest, entry.size), annotated: annotated(0) })), body: undefined };
    const held = cache.heldBytes(digest);
    if (!held) return undefined;
    return { answer: this.#answer(target, head, access, digest, () => ({ kind: 'blob', headers: blobHeaders(digest, held.bytes.length), annotated: annotated(held.bytes.length) })), body: held.bytes };
  }

  /**
   * The target's last answer for this method if it was made for the same access and digest (a tag
   * that moved names another), else a new one from `parts`, kept for the next request of a kept target.
   */
  #answer(target: HitTarget, head: boolean, access: string, digest: Digest, parts: () => HitParts): HitAnswer {
    if (!target.kept) return new HitAnswer(parts(), access, digest, false);
    let answers = this.#answers.get(target);
    if (!answers) this.#answers.set(target, (answers = {}));
    const method = head ? 'HEAD' : 'GET';
    const last = answers[method];
    if (last?.access === access && last.digest === digest) return last;
    return (answers[method] = new HitAnswer(parts(), access, digest, true));
  }

  /** The request's log line and metrics, as fastify's request log writes them once the answer is sent (or failed). */
  completed(req: HitRequest, hit: Hit, requestId: string, started: number, error?: Error): void {
    const { answer } = hit;
    const elapsed = performance.now() - started;
    const metrics: Metrics | undefined = this.#ctx.metrics;
    if (error) {
      const line = requestLine(req.method!, req.headers.host, req.url!, 200, answer.headers['content-length'], elapsed, answer.annotated);
      this.#host.logger.child({ reqId: requestId }).error({ ...line, err: error }, 'request errored');
      if (metrics) recordCompleted(metrics, this.#host.listener, line, answer.annotated, answer.outcome, error);
      return;
    }
    // requestLine's rounding of the duration.
    answer.line(req).write(this.#host.logger, Math.round(elapsed * 10) / 10, requestId);
    if (!metrics) return;
    const counted = answer.counted(metrics, this.#host.listener);
    if (answer.shared) metrics.tallyRequest(counted);
    else metrics.recordRequest(counted);
  }
}
