import type { Metrics } from '../metrics/metrics.js';
import dgram from 'node:dgram';
import { Packet } from 'dns2';
import type { LayoverConfig } from '../config/layover-config.js';
import type { FastifyBaseLogger } from 'fastify';
import type { HostnameSet } from '../registry/hostname.js';
import { clientPrefix } from '../net/client-prefix.js';
import { AnswerBuilder } from './answer-builder.js';
import { AnswerCache } from './answer-cache.js';
import { ClientNetworks } from './client-networks.js';
import { errorResponse } from './error-response.js';
import { Forwarder, type Transport } from './forwarder.js';
import { LocalEndpoints, withoutSelf } from './loop-guard.js';
import { fitReply } from './fit-reply.js';
import { UdpReplyBatch } from './reply-batch.js';
import { ResponseRateLimiter } from './response-rate-limiter.js';
import { TcpListener } from './tcp-listener.js';
import { upstreamQuery } from './upstream-query.js';
import { bindUdpSocket, UDP_RECV_BUFFER_BYTES } from './udp-socket.js';
import { UdpAnswerWorkers, udpWorkerCount } from './udp-workers.js';
import { EXACT, InterceptedMatcher } from './intercepted-matcher.js';
import { MAX_QUERY_BYTES, readQuery, REJECT, type Rejection } from './query-reader.js';
import { FLAG, HEADER_SIZE, NO_OPT, optDnssecOk, QCLASS, QTYPE, type Question, questionKey, RCODE } from './wire.js';

export interface DnsServerOptions {
  listen: { host: string; port: number }; // port 0 = pick one free port, the SAME for UDP and TCP
  intercepted: HostnameSet; // names answered by us (already includes docker.proxy)
  advertise: string[]; // IPv4 -> A answers, IPv6 -> AAAA answers
  upstreams: { host: string; port: number }[]; // real resolvers to forward everything else to
  logger: FastifyBaseLogger; // pino; structured fields only
  answerTtl?: number; // seconds, default 60
  upstreamTimeoutMs?: number; // per attempt, default 2000
  cacheEntries?: number; // forwarded-answer cache bound, default 10000
  /** Recursion allow list, response-rate limiting, TCP deadline and per-client cap (LayoverConfig.dnsPolicy). */
  policy: LayoverConfig['dnsPolicy'];
  /** Counts queries by result (answered, forwarded, refused, failed, limited). */
  metrics?: Metrics;
  /**
   * Worker threads with UDP sockets of their own on the same address and port (SO_REUSEPORT),
   * answering intercepted names beside the main thread: 'auto' is one per further core. Default 0.
   */
  udpWorkers?: number | 'auto';
  /** The UDP answer workers' module; tests only (a fixture that misbehaves). */
  udpWorkerScript?: URL;
  /**
   * True: intercepted names get SERVFAIL until answerIntercepted(). Layover's DNS listens before its
   * HTTPS listener is up (src/app.ts), and an address that refuses connections is worse than a
   * failure, on which a client's resolver asks its next server (another replica). Default false.
   */
  holdIntercepted?: boolean;
}

/** The `result` label of layover_dns_queries_total: each query is counted once, with its final fate. */
type DnsResult = 'answered' | 'forwarded' | 'refused' | 'failed' | 'limited';
type QueryCounters = Record<DnsResult, { inc(by?: number): void }>;

const TCP_MAX_CONNECTIONS = 256;
const TCP_MAX_IN_FLIGHT = 32;
/** With port 0 the free UDP port may be taken for TCP; try a few more. */
const BIND_ATTEMPTS = 10;
/** Warnings about a loop and notices about refused recursion: at most one a minute each, whatever the flood. */
const NOTICE_INTERVAL_MS = 60_000;
/** Each forward holds a socket; a flood of unique names must not exhaust file descriptors. */
const MAX_FORWARDS_IN_FLIGHT = 1024;
/**
 * Forwards one client prefix (/24, /56) may have started and still wait for: a flood of unique names
 * that the upstream is slow to fail (a silent authoritative server) takes a quarter of the slots, not
 * every one, and the other clients' names still resolve. Clients in DNS_RATE_LIMIT_EXEMPT are not held to it.
 */
const MAX_FORWARDS_PER_PREFIX = MAX_FORWARDS_IN_FLIGHT / 4;

/**
 * Layover's DNS server: A/AAAA for intercepted names from pre-built bytes
 * (the hot path, no dns2 per query), for anyone. Everything else is validated
 * with dns2 and forwarded to the upstreams through a TTL-respecting cache,
 * but only for clients in the recursion allow list (others get REFUSED, so
 * strangers cannot use Layover as an open resolver); ANY gets RFC 8482's
 * minimal answer instead of a forward, and UDP responses are rate-limited
 * per client prefix, so a forged source cannot turn Layover into an amplifier
 * (clients in DNS_RATE_LIMIT_EXEMPT, a cluster's DNS asking for many, are not).
 */
export class DnsServer {
  readonly #options: DnsServerOptions;
  readonly #logger: FastifyBaseLogger;
  readonly #answers: AnswerBuilder;
  readonly #intercepted: InterceptedMatcher;
  readonly #cache: AnswerCache;
  readonly #endpoints = new LocalEndpoints();
  /** Forwards in flight by transport and question: concurrent askers (or a resolver that loops back to us) share one. */
  readonly #flights = new Map<string, Promise<Buffer | null>>();
  /** Forwards in flight by the client prefix that started them (joining one starts none). */
  readonly #flightsByPrefix = new Map<string, number>();
  readonly #tcp: TcpListener;
  readonly #recursion: ClientNetworks;
  /** For what only the main thread sends (forwarded answers, refusals, errors): the full configured rate. */
  readonly #rateLimiter: ResponseRateLimiter;
  /**
   * For intercepted names, which every socket answers: this socket's share of the rate (the same
   * limiter as #rateLimiter without workers).
   */
  readonly #interceptedRateLimiter: ResponseRateLimiter;
  /** Clients the rate limit spares (DNS_RATE_LIMIT_EXEMPT): null when there are none or no limit, so the hot path skips the check. */
  readonly #rateLimitExempt: ClientNetworks | null;
  /** DNS_RATE_LIMIT_EXEMPT again: a cluster DNS or node-local cache forwards for many clients from one address. */
  readonly #forwardShareExempt: ClientNetworks | null;
  /** UDP replies go out together at the end of the event loop's turn. */
  readonly #replies: UdpReplyBatch;
  #udp: dgram.Socket | undefined;
  readonly #udpWorkerCount: number;
  #udpWorkers: UdpAnswerWorkers | undefined;
  /** answerIntercepted() starting the UDP answer workers: close() and holdIntercepted() wait for it. */
  #udpWorkersStarting: Promise<void> | undefined;
  /** Where listen() bound UDP and TCP, once it has. */
  #bound: { host: string; port: number } | null = null;
  /** Intercepted names get SERVFAIL (holdIntercepted()); the UDP answer workers are not running. */
  #holding: boolean;
  #forwarder: Forwarder | undefined;
  /** listen() until it has settled: close() waits for it, so that what it bound is released. */
  #starting: Promise<unknown> | undefined;
  #closed = false;
  #lastLoopWarning = -Infinity;
  #lastRefusalNotice = -Infinity;
  /** Counter children bound once: the hot path pays an increment, not a label look-up. */
  readonly #counters: QueryCounters | null;
  /**
   * What #handle decided for the query it just answered synchronously (null: not a query, e.g. a
   * response), read by its caller right after it returns: no object per query on the hot path.
   */
  #result: DnsResult | null = null;
  /** Set with #result: the reply is an intercepted name's answer, which every socket gives. */
  #interceptedAnswer = false;
  /** Set with #interceptedAnswer: the wildcard (`*.suffix`) the name was intercepted under, if any. */
  #interceptedWildcard: string | undefined = undefined;
  /** Set with #result: the query had an OPT record (a truncated slip of the rate limit then carries one). */
  #queryEdns = false;

  constructor(options: DnsServerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    // The socket of a bind attempt that was given up on, or of a server closed meanwhile, throws.
    this.#replies = new UdpReplyBatch((err, client) => this.#logger.debug({ err: err.message, client }, 'dns udp send failed'));
    this.#answers = new AnswerBuilder(options.advertise, options.answerTtl ?? 60);
    this.#intercepted = new InterceptedMatcher(options.intercepted);
    this.#cache = new AnswerCache(options.cacheEntries ?? 10_000);
    const timeout = options.upstreamTimeoutMs ?? 2000;
    if (!(timeout > 0)) throw new Error(`dns upstreamTimeoutMs: expected milliseconds, got ${timeout}`);
    const { policy } = options;
    this.#recursion = new ClientNetworks(policy.allowRecursion);
    this.#udpWorkerCount = udpWorkerCount(options.udpWorkers);
    this.#holding = options.holdIntercepted === true;
    this.#rateLimiter = new ResponseRateLimiter({ perSecond: policy.rateLimit, slip: policy.rateLimitSlip });
    this.#interceptedRateLimiter =
      this.#udpWorkerCount > 0 ? new ResponseRateLimiter({ perSecond: this.#perSocketRateLimit(), slip: policy.rateLimitSlip }) : this.#rateLimiter;
    this.#rateLimitExempt = policy.rateLimit > 0 && policy.rateLimitExempt.length > 0 ? new ClientNetworks(policy.rateLimitExempt) : null;
    this.#forwardShareExempt = policy.rateLimitExempt.length > 0 ? new ClientNetworks(policy.rateLimitExempt) : null;
    const queries = options.metrics?.dnsQueries;
    this.#counters = queries
      ? { answered: queries.labels('answered'), forwarded: queries.labels('forwarded'), refused: queries.labels('refused'), failed: queries.labels('failed'), limited: queries.labels('limited') }
      : null;
    this.#tcp = new TcpListener({
      handle: (query, remote) => this.#handleTcp(query, remote.address, remote.port),
      logger: options.logger,
      maxMessageBytes: MAX_QUERY_BYTES,
      queryTimeoutMs: policy.tcpQueryMs,
      maxConnections: TCP_MAX_CONNECTIONS,
      // 0 leaves only the overall cap, as the other per-client settings read 0.
      maxPerClient: policy.tcpMaxPerClient === 0 ? TCP_MAX_CONNECTIONS : Math.min(policy.tcpMaxPerClient, TCP_MAX_CONNECTIONS),
      maxInFlight: TCP_MAX_IN_FLIGHT,
    });
  }

  /** Binds UDP and TCP on one port; rejects on EADDRINUSE and other bind errors, and when close() comes first. */
  listen(): Promise<{ host: string; port: number }> {
    if (this.#starting || this.#closed) return Promise.reject(new Error('DnsServer.listen: already listening or closed'));
    // A start that fails releases what it bound before it rejects, so that listen() may be tried again.
    const starting = this.#start().catch(async (err: unknown) => {
      await this.#release();
      if (!this.#closed) this.#starting = undefined;
      throw err;
    });
    this.#starting = starting.catch(() => undefined);
    return starting;
  }

  async #start(): Promise<{ host: string; port: number }> {
    const { host, port } = this.#options.listen;
    for (let attempt = 1; ; attempt++) {
      const udp = await bindUdpSocket(host, port, this.#udpWorkerCount > 0);
      // Listening before the forwarder exists is safe: until then nothing is forwarded (SERVFAIL).
      udp.on('error', (err) => this.#logger.error({ err }, 'dns udp socket error'));
      udp.on('message', (msg, rinfo) => this.#onDatagram(udp, msg, rinfo.address, rinfo.port));
      // From here close() ends this socket, whichever step listen() has reached.
      this.#udp = udp;
      this.#throwIfClosed();
      try {
        await this.#tcp.listen(host, udp.address().port);
      } catch (err) {
        this.#udp = undefined;
        await closeUdp(udp);
        if (port === 0 && attempt < BIND_ATTEMPTS && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw err;
      }
      this.#throwIfClosed();
      break;
    }
    try {
      this.#udp.setRecvBufferSize(UDP_RECV_BUFFER_BYTES);
    } catch (err) {
      this.#logger.debug({ err }, 'dns: could not enlarge the UDP receive buffer');
    }
    const bound = { host, port: this.#udp.address().port };
    if (this.#udpWorkerCount > 0 && !this.#holding) await this.#startUdpWorkers(bound);
    this.#throwIfClosed();
    this.#forwarder = new Forwarder({
      upstreams: withoutSelf(this.#options.upstreams, bound, this.#logger),
      timeoutMs: this.#options.upstreamTimeoutMs ?? 2000,
      logger: this.#logger,
      endpoints: this.#endpoints,
    });
    this.#bound = bound;
    this.#logger.info({ host, port: bound.port, interceptedHeld: this.#holding }, 'dns server listening');
    return bound;
  }

  /** Where UDP and TCP are bound; null until listen() has completed. */
  get address(): { host: string; port: number } | null {
    return this.#bound;
  }

  /**
   * From now on intercepted names are answered (the HTTPS listener is up), by the UDP answer workers
   * too: they start here if listen() came first. Rejects if a worker cannot bind.
   */
  async answerIntercepted(): Promise<void> {
    this.#holding = false;
    // A listen() under way either read the flag in time and starts the workers, or left them to us.
    await this.#starting;
    if (this.#udpWorkerCount === 0 || !this.#bound || this.#closed || this.#udpWorkers) return;
    this.#udpWorkersStarting ??= this.#startUdpWorkers(this.#bound).finally(() => (this.#udpWorkersStarting = undefined));
    await this.#udpWorkersStarting;
  }

  /** From now on intercepted names get SERVFAIL (the HTTPS listeners have closed); the UDP answer workers end. */
  async holdIntercepted(): Promise<void> {
    this.#holding = true;
    await this.#udpWorkersStarting?.catch(() => undefined);
    const workers = this.#udpWorkers;
    this.#udpWorkers = undefined;
    await workers?.close();
  }

  /** After each step of listen(): a close() that came meanwhile ends the start (close() releases what it bound). */
  #throwIfClosed(): void {
    if (this.#closed) throw new Error('DnsServer.listen: closed while starting');
  }

  async close(): Promise<void> {
    this.#closed = true;
    // A start under way stops at its next step; what it bound by then is released below.
    await this.#starting;
    await this.#udpWorkersStarting?.catch(() => undefined);
    await this.#release();
    this.#bound = null;
    this.#cache.clear();
  }

  /** Ends the forwarder, the sockets and the workers, whichever exist. */
  async #release(): Promise<void> {
    this.#forwarder?.close();
    this.#forwarder = undefined;
    const udp = this.#udp;
    this.#udp = undefined;
    const workers = this.#udpWorkers;
    this.#udpWorkers = undefined;
    await Promise.all([udp ? closeUdp(udp) : undefined, this.#tcp.close(), workers?.close()]);
  }

  /** Queries each UDP answer worker has answered so far ([] without workers): which sockets the kernel used. */
  udpWorkerAnswers(): number[] {
    return this.#udpWorkers?.answeredByWorker() ?? [];
  }

  /**
   * Each socket keeps its own rate-limit accounts for intercepted names, and the kernel spreads a
   * client's queries over the sockets by source port: each gets its share of the limit, so that
   * together they allow about the configured rate (a client that keeps one source port gets one
   * socket's share). Everything else only the main thread answers, at the full rate.
   */
  #perSocketRateLimit(): number {
    return Math.ceil(this.#options.policy.rateLimit / (this.#udpWorkerCount + 1));
  }

  /**
   * Starts the UDP answer workers on the main socket's address and port; on a failure close() ends
   * the rest. Workers that started after a close() or holdIntercepted() end again at once.
   */
  async #startUdpWorkers(bound: { host: string; port: number }): Promise<void> {
    const { policy } = this.#options;
    const udp = this.#udp!;
    const workers = await UdpAnswerWorkers.start(
      this.#udpWorkerCount,
      {
        ...bound,
        intercepted: [...this.#options.intercepted.names(), ...this.#options.intercepted.wildcards()],
        advertise: this.#options.advertise,
        answerTtl: this.#options.answerTtl ?? 60,
        rateLimit: this.#perSocketRateLimit(),
        rateLimitSlip: policy.rateLimitSlip,
        rateLimitExempt: [...policy.rateLimitExempt],
      },
      {
        // A handed-over packet is answered from the main socket: same address and port, so the client takes it.
        onQuery: (packet, address, port) => this.#onDatagram(udp, packet, address, port),
        onCounts: (answered, limited, dropped) => {
          this.#counters?.answered.inc(answered);
          this.#counters?.limited.inc(limited);
          // Unanswered, as a query the kernel drops from a full buffer: a failure, like the loop guard's silence.
          this.#counters?.failed.inc(dropped);
        },
        logger: this.#logger,
      },
      this.#options.udpWorkerScript,
    );
    if (this.#holding || this.#closed) await workers.close();
    else this.#udpWorkers = workers;
  }

  #onDatagram(udp: dgram.Socket, msg: Buffer, address: string, port: number): void {
    try {
      const reply = this.#handle(msg, 'udp', address, port);
      const opt = this.#queryEdns ? this.#answers.opt : undefined;
      if (reply instanceof Promise) {
        reply.then((late) => this.#send(udp, late, address, port, forwardResult(late), false, undefined, opt)).catch((err: unknown) => this.#logger.error({ err }, 'dns query failed'));
      } else {
        this.#send(udp, reply, address, port, this.#result, this.#interceptedAnswer, this.#interceptedWildcard, opt);
      }
    } catch (err) {
      this.#logger.error({ err }, 'dns query failed');
    }
  }

  /** Over TCP a source cannot be forged: nothing there is rate-limited, the result is final. */
  #handleTcp(msg: Buffer, address: string, port: number): Buffer | null | Promise<Buffer | null> {
    const reply = this.#handle(msg, 'tcp', address, port);
    if (!(reply instanceof Promise)) {
      this.#count(this.#result);
      return reply;
    }
    return reply.then((late) => {
      this.#count(forwardResult(late));
      return late;
    });
  }

  #count(result: DnsResult | null): void {
    if (result !== null) this.#counters?.[result].inc();
  }

  /** UDP only: over TCP a source cannot be forged, so nothing there is rate-limited. */
  #send(udp: dgram.Socket, answer: Buffer | null, address: string, port: number, result: DnsResult | null, intercepted: boolean, wildcard?: string, opt?: Buffer): void {
    // A reply that completes after close() has nowhere to go.
    if (!answer || this.#closed) return this.#count(result);
    const limiter = intercepted ? this.#interceptedRateLimiter : this.#rateLimiter;
    const reply = this.#rateLimitExempt?.includes(address) ? answer : limiter.admit(answer, address, wildcard, opt);
    // Dropped or cut to a truncated slip by the rate limit: that is the query's fate.
    this.#count(reply === answer ? result : 'limited');
    if (!reply) return;
    this.#replies.send(udp, reply, port, address);
  }

  /**
   * The response to one query, or null to stay silent. Synchronous for
   * intercepted names, so the hot path allocates no promise.
   */
  #handle(msg: Buffer, transport: Transport, address: string, port: number): Buffer | null | Promise<Buffer | null> {
    this.#interceptedAnswer = false;
    this.#interceptedWildcard = undefined;
    this.#queryEdns = false;
    const query = readQuery(msg, transport);
    if (typeof query === 'number') return this.#reject(msg, query);
    const { question, opt, maxSize } = query;
    this.#queryEdns = opt !== NO_OPT;
    const match = question.hostname === null ? null : this.#intercepted.match(question.hostname);
    if (match !== null) {
      if (this.#holding) {
        this.#result = 'failed';
        return this.#errorEchoing(msg, RCODE.SERVFAIL, RCODE.SERVFAIL);
      }
      this.#result = 'answered';
      this.#interceptedAnswer = true;
      this.#interceptedWildcard = match === EXACT ? undefined : match;
      return this.#answers.build(msg, question.end, question.qtype, question.qclass, opt !== NO_OPT, maxSize);
    }
    // Whatever is answered below without a branch saying otherwise is a failure (SERVFAIL, silence).
    this.#result = 'failed';
    if (this.#endpoints.has(address, port)) {
      this.#warnLoop(address, port);
      return null;
    }
    if (!this.#recursion.includes(address)) {
      this.#noteRefusal(address, transport);
      this.#result = 'refused';
      return this.#answers.refused(msg, question.end, opt !== NO_OPT);
    }
    if (question.qtype === QTYPE.ANY && (question.qclass === QCLASS.IN || question.qclass === QCLASS.ANY)) {
      this.#result = 'answered';
      return this.#answers.minimalAny(msg, question.end, opt !== NO_OPT, maxSize);
    }
    return this.#forward(msg, question, opt, transport, maxSize, address);
  }

  /** The answer to a packet readQuery turned away: an error, or silence. */
  #reject(msg: Buffer, rejection: Rejection): Buffer | null {
    // A response is no query: not counted. Everything else counts as failed (FORMERR, NOTIMP, BADVERS, silence).
    this.#result = rejection === REJECT.RESPONSE ? null : 'failed';
    switch (rejection) {
      case REJECT.TOO_SHORT:
      case REJECT.RESPONSE:
        return null;
      case REJECT.NOTIMP:
        return errorResponse(msg, RCODE.NOTIMP);
      case REJECT.BADVERS:
        return this.#errorEchoing(msg, RCODE.BADVERS, RCODE.FORMERR);
      default:
        return errorResponse(msg, RCODE.FORMERR);
    }
  }

  #forward(msg: Buffer, question: Question, opt: number, transport: Transport, maxSize: number, address: string): Buffer | Promise<Buffer | null> {
    // Answers differ with EDNS, its DO bit and the CD bit, so those are part of the key; and they are
    // all that is relayed of the client's query (upstreamQuery).
    const edns = opt !== NO_OPT;
    const dnssecOk = edns && optDnssecOk(msg, opt);
    const flavour = `${!edns ? '-' : dnssecOk ? 'D' : 'E'}${msg.readUInt16BE(2) & FLAG.CD ? 'C' : '-'}`;
    const key = flavour + questionKey(msg, question.end);
    // A cache hit relays nothing, and the wire reader has checked the header,
    // the question and the framing of any records, so dns2 is spared here.
    const cached = this.#cache.get(key);
    if (cached) {
      this.#result = 'forwarded';
      return fitReply(cached, msg, question.end, maxSize, edns ? this.#answers.opt : undefined);
    }

    // Before anything is relayed upstream, dns2 decodes the whole query once
    // so that nothing malformed leaves.
    let parsed: Packet;
    try {
      parsed = Packet.parse(msg);
    } catch {
      return errorResponse(msg, RCODE.FORMERR);
    }
    if (parsed.errors.length > 0 || parsed.questions.length !== 1) return errorResponse(msg, RCODE.FORMERR);

    const forwarder = this.#forwarder;
    if (!forwarder || this.#closed) return errorResponse(msg, RCODE.SERVFAIL, parsed);
    const flightKey = transport + key;
    let flight = this.#flights.get(flightKey);
    if (!flight) {
      const prefix = clientPrefix(address);
      const started = this.#flightsByPrefix.get(prefix) ?? 0;
      if (this.#flights.size >= MAX_FORWARDS_IN_FLIGHT) return errorResponse(msg, RCODE.SERVFAIL, parsed);
      if (started >= MAX_FORWARDS_PER_PREFIX && !this.#forwardShareExempt?.includes(address)) return errorResponse(msg, RCODE.SERVFAIL, parsed);
      this.#logger.debug({ transport, qtype: question.qtype }, 'dns forwarding');
      flight = forwarder.forward(upstreamQuery(msg, question.end, edns, dnssecOk), question.end, transport).then((reply) => {
        if (reply && !this.#closed) this.#cache.set(key, reply);
        return reply;
      });
      this.#flightsByPrefix.set(prefix, started + 1);
      const settled = flight.finally(() => {
        this.#flights.delete(flightKey);
        const left = (this.#flightsByPrefix.get(prefix) ?? 1) - 1;
        if (left > 0) this.#flightsByPrefix.set(prefix, left);
        else this.#flightsByPrefix.delete(prefix);
      });
      settled.catch(() => undefined);
      this.#flights.set(flightKey, flight);
    }
    return flight.then((reply) =>
      reply ? fitReply(Buffer.from(reply), msg, question.end, maxSize, edns ? this.#answers.opt : undefined) : errorResponse(msg, RCODE.SERVFAIL, parsed),
    );
  }

  /**
   * An error echoing the question and the client's EDNS (dns2 encodes it: these are rare), or a
   * bare header with `undecodable` when dns2 cannot read the query after all.
   */
  #errorEchoing(msg: Buffer, rcode: number, undecodable: number): Buffer {
    try {
      const parsed = Packet.parse(msg);
      if (parsed.errors.length === 0) return errorResponse(msg, rcode, parsed);
    } catch {
      // The bare header below.
    }
    return errorResponse(msg, undecodable);
  }

  /**
   * Every refusal at debug level; one notice a minute at info, so that an
   * operator whose clients fall outside DNS_ALLOW_RECURSION can find out why,
   * and a flood of strangers cannot flood the log.
   */
  #noteRefusal(address: string, transport: Transport): void {
    this.#logger.debug({ client: address, transport }, 'dns recursion refused');
    const now = performance.now();
    if (now - this.#lastRefusalNotice < NOTICE_INTERVAL_MS) return;
    this.#lastRefusalNotice = now;
    this.#logger.info({ client: address }, 'dns: refused to resolve a name that is not intercepted for a client outside the recursion allow list (DNS_ALLOW_RECURSION)');
  }

  #warnLoop(address: string, port: number): void {
    const now = performance.now();
    if (now - this.#lastLoopWarning < NOTICE_INTERVAL_MS) return;
    this.#lastLoopWarning = now;
    this.#logger.warn({ source: `${address}:${port}` }, 'dns query came from our own forwarding socket; dropped it to break a loop');
  }
}

/** A forward's answer: the upstream's, or Layover's SERVFAIL when none came (an upstream's SERVFAIL is a failure too). */
function forwardResult(reply: Buffer | null): DnsResult {
  return reply !== null && reply.length >= HEADER_SIZE && (reply.readUInt16BE(2) & 0x000f) !== RCODE.SERVFAIL ? 'forwarded' : 'failed';
}

function closeUdp(udp: dgram.Socket): Promise<void> {
  return new Promise((resolve) => udp.close(() => resolve()));
}
