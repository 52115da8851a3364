import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { FastifyBaseLogger } from 'fastify';
import { readHandovers } from './handover-batch.js';
import { UDP_RECV_BUFFER_BYTES } from './udp-socket.js';

/** What a UDP answer worker needs to answer intercepted names as the main thread does. */
export interface UdpWorkerData {
  host: string;
  port: number;
  /** The intercepted names and `*.suffix` patterns. */
  intercepted: string[];
  advertise: string[];
  answerTtl: number;
  /** Responses per second for this socket's accounts (0: no limit), slip, and who is exempt. */
  rateLimit: number;
  rateLimitSlip: number;
  rateLimitExempt: string[];
  /** COUNT_SLOTS Float64 slots per worker (answered, limited, dropped), each written only by its worker. */
  counts: SharedArrayBuffer;
  /**
   * One Int32 slot per worker: bytes it has handed to the main thread that the main thread has not
   * read yet. The worker adds, the main thread subtracts; beyond handoverLimit the worker drops.
   */
  handedOver: SharedArrayBuffer;
  handoverLimit: number;
  index: number;
}

/** The workers' count slots, in this order. */
export const COUNT_SLOTS = 3;
export const ANSWERED_SLOT = 0;
export const LIMITED_SLOT = 1;
export const DROPPED_SLOT = 2;

/**
 * What one worker may have handed to a busy main thread and not yet had read: about a kernel
 * socket buffer's worth (the main socket's own queue is bounded the same way). Beyond it a flood
 * of names to forward, or of junk, is dropped in the worker instead of queueing in memory.
 */
export const HANDOVER_LIMIT_BYTES = UDP_RECV_BUFFER_BYTES;

export type UdpWorkerEvent =
  | { kind: 'listening' }
  | { kind: 'failed'; message: string }
  | { kind: 'error'; message: string }
  /** Packets the worker does not answer itself, as they arrived (framed by HandoverBatch). */
  | { kind: 'queries'; frames: Uint8Array };

export interface UdpWorkerHooks {
  /** A packet a worker handed over: answer it from the main thread's socket. */
  onQuery(packet: Buffer, address: string, port: number): void;
  /**
   * Queries the workers answered, those the rate limit dropped or cut, and those they dropped
   * because the main thread had not read what they handed over, since the last call.
   */
  onCounts(answered: number, limited: number, dropped: number): void;
  logger: FastifyBaseLogger;
}

/**
 * A worker holds pre-built answers and bounded rate-limit accounts: a small heap is plenty, and
 * bounds what each costs (an idle worker is still about 20 MB of RSS, mostly its V8 isolate).
 */
const WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 };
/** 'auto': one worker per core beyond the main thread's, at most this many. */
const MAX_AUTO_WORKERS = 3;
/**
 * How often the workers' counts reach the metrics: per packet a message would
 * cost more than the answer, so they are added in batches.
 */
export const COUNT_FLUSH_MS = 1000;
/** Warnings about dropped hand-overs: at most one a minute, whatever the flood. */
const DROP_NOTICE_INTERVAL_MS = 60_000;

export function udpWorkerCount(setting: number | 'auto' | undefined): number {
  if (setting === 'auto') return Math.max(0, Math.min(MAX_AUTO_WORKERS, availableParallelism() - 1));
  const count = setting ?? 0;
  if (!Number.isInteger(count) || count < 0) throw new Error(`dns udpWorkers: expected a number of workers, got ${count}`);
  return count;
}

/**
 * The UDP answer workers of a DnsServer (./udp-answer-worker.ts): started
 * once the main thread's socket is bound with SO_REUSEPORT, ended by close().
 */
export class UdpAnswerWorkers {
  readonly #workers: Worker[] = [];
  readonly #countsBuffer: SharedArrayBuffer;
  readonly #counts: Float64Array;
  readonly #flushed: Float64Array;
  readonly #handedOverBuffer: SharedArrayBuffer;
  readonly #handedOver: Int32Array;
  readonly #hooks: UdpWorkerHooks;
  readonly #timer: NodeJS.Timeout;
  #started = false;
  #closed = false;
  #lastDropNotice = -Infinity;
  readonly #onQuery: UdpWorkerHooks['onQuery'];

  private constructor(count: number, hooks: UdpWorkerHooks) {
    this.#countsBuffer = new SharedArrayBuffer(count * COUNT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    this.#counts = new Float64Array(this.#countsBuffer);
    this.#flushed = new Float64Array(this.#counts.length);
    this.#handedOverBuffer = new SharedArrayBuffer(count * Int32Array.BYTES_PER_ELEMENT);
    this.#handedOver = new Int32Array(this.#handedOverBuffer);
    this.#hooks = hooks;
    this.#onQuery = (packet, address, port) => hooks.onQuery(packet, address, port);
    this.#timer = setInterval(() => this.flushCounts(), COUNT_FLUSH_MS).unref();
  }

  /**
   * Starts `count` workers on `settings`' address and port; rejects (with none left running) if one
   * cannot bind. `script` is the worker's module (tests pass a fixture that misbehaves).
   */
  static async start(count: number, settings: Omit<UdpWorkerData, 'counts' | 'handedOver' | 'handoverLimit' | 'index'>, hooks: UdpWorkerHooks, script: URL = WORKER_URL): Promise<UdpAnswerWorkers> {
    const pool = new UdpAnswerWorkers(count, hooks);
    const started: Promise<void>[] = [];
    for (let index = 0; index < count; index++) {
      const worker = new Worker(script, {
        workerData: { ...settings, counts: pool.#countsBuffer, handedOver: pool.#handedOverBuffer, handoverLimit: HANDOVER_LIMIT_BYTES, index } satisfies UdpWorkerData,
        execArgv: WORKER_EXEC_ARGV,
        resourceLimits: WORKER_HEAP_LIMITS,
      });
      // Watched from the first moment: a worker that fails after it listened, while another is
      // still starting, must not be an unhandled 'error' event (that ends the process).
      pool.#watch(worker, index);
      pool.#workers.push(worker);
      started.push(listening(worker));
    }
    const results = await Promise.allSettled(started);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) {
      await pool.close();
      throw failure.reason;
    }
    pool.#started = true;
    return pool;
  }

  get size(): number {
    return this.#workers.length;
  }

  /** Queries each worker has answered so far (whole or cut by the rate limit), by worker. */
  answeredByWorker(): number[] {
    return this.#workers.map((_, index) => this.#counts[COUNT_SLOTS * index + ANSWERED_SLOT]! + this.#counts[COUNT_SLOTS * index + LIMITED_SLOT]!);
  }

  /** Adds what the workers counted since the last flush to the metrics. */
  flushCounts(): void {
    const sums = [0, 0, 0];
    for (let slot = 0; slot < this.#counts.length; slot++) {
      const now = this.#counts[slot]!;
      sums[slot % COUNT_SLOTS]! += now - this.#flushed[slot]!;
      this.#flushed[slot] = now;
    }
    const [answered = 0, limited = 0, dropped = 0] = sums;
    if (answered > 0 || limited > 0 || dropped > 0) this.#hooks.onCounts(answered, limited, dropped);
    if (dropped > 0) this.#noteDrops(dropped);
  }

  /** Ends every worker (their sockets close with them) and counts what they answered. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
    this.flushCounts();
  }

  #watch(worker: Worker, index: number): void {
    const { logger } = this.#hooks;
    worker.on('message', (event: UdpWorkerEvent) => {
      if (event.kind === 'queries') {
        try {
          readHandovers(event.frames, this.#onQuery);
        } finally {
          // Read: the worker may hand over that much again.
          Atomics.sub(this.#handedOver, index, event.frames.byteLength);
        }
      } else if (event.kind === 'error') logger.error({ err: event.message }, 'dns udp worker socket error');
    });
    worker.on('error', (err) => logger.error({ err }, 'dns udp worker failed'));
    // A worker that died has closed its socket, and the kernel gives its clients to the other sockets.
    worker.on('exit', (code) => {
      if (this.#started && !this.#closed) logger.error({ code }, 'dns udp worker exited; the other sockets answer its clients');
    });
  }

  #noteDrops(dropped: number): void {
    const now = performance.now();
    if (now - this.#lastDropNotice < DROP_NOTICE_INTERVAL_MS) return;
    this.#lastDropNotice = now;
    this.#hooks.logger.warn({ dropped }, 'dns: udp workers dropped queries the main thread had no time for (names to forward, malformed packets)');
  }
}

function listening(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (event: UdpWorkerEvent): void => {
      if (event.kind !== 'listening' && event.kind !== 'failed') return;
      done();
      if (event.kind === 'listening') resolve();
      else reject(new Error(`dns udp worker: ${event.message}`));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onExit = (code: number): void => {
      done();
      reject(new Error(`dns udp worker exited (${code}) before it listened`));
    };
    const done = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

/**
 * Built, this file sits next to udp-answer-worker.js. Run from source (the
 * tests), it is TypeScript that Node strips of its types, whose imports name
 * `.js` files that exist as `.ts`: a resolve hook tries the `.ts` instead.
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(`./udp-answer-worker.${FROM_SOURCE ? 'ts' : 'js'}`, import.meta.url);
const SOURCE_RESOLVE_HOOK = `
import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !specifier.startsWith('.') || !specifier.endsWith('.js')) throw err;
      return nextResolve(specifier.slice(0, -3) + '.ts', context);
    }
  },
});`;
const WORKER_EXEC_ARGV = FROM_SOURCE ? ['--import', `data:text/javascript,${encodeURIComponent(SOURCE_RESOLVE_HOOK)}`] : [];
