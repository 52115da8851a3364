import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { FastifyBaseLogger } from 'fastify';
import { readHandovers } from './handover-batch.js';

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
  /** Two Float64 slots per worker (answered, limited), each written only by its worker. */
  counts: SharedArrayBuffer;
  index: number;
}

export type UdpWorkerEvent =
  | { kind: 'listening' }
  | { kind: 'failed'; message: string }
  | { kind: 'error'; message: string }
  /** Packets the worker does not answer itself, as they arrived (framed by HandoverBatch). */
  | { kind: 'queries'; frames: Uint8Array };

export interface UdpWorkerHooks {
  /** A packet a worker handed over: answer it from the main thread's socket. */
  onQuery(packet: Buffer, address: string, port: number): void;
  /** Queries the workers answered, and those the rate limit dropped or cut, since the last call. */
  onCounts(answered: number, limited: number): void;
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
  readonly #workers: Worker[];
  readonly #counts: Float64Array;
  readonly #flushed: Float64Array;
  readonly #hooks: UdpWorkerHooks;
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  readonly #onQuery: UdpWorkerHooks['onQuery'];

  private constructor(workers: Worker[], counts: Float64Array, hooks: UdpWorkerHooks) {
    this.#workers = workers;
    this.#counts = counts;
    this.#flushed = new Float64Array(counts.length);
    this.#hooks = hooks;
    this.#onQuery = (packet, address, port) => hooks.onQuery(packet, address, port);
    this.#timer = setInterval(() => this.flushCounts(), COUNT_FLUSH_MS).unref();
  }

  /** Starts `count` workers on `settings`' address and port; rejects (with none left running) if one cannot bind. */
  static async start(count: number, settings: Omit<UdpWorkerData, 'counts' | 'index'>, hooks: UdpWorkerHooks): Promise<UdpAnswerWorkers> {
    const shared = new SharedArrayBuffer(count * 2 * Float64Array.BYTES_PER_ELEMENT);
    const workers: Worker[] = [];
    const started: Promise<void>[] = [];
    for (let index = 0; index < count; index++) {
      const worker = new Worker(WORKER_URL, {
        workerData: { ...settings, counts: shared, index } satisfies UdpWorkerData,
        execArgv: WORKER_EXEC_ARGV,
        resourceLimits: WORKER_HEAP_LIMITS,
      });
      workers.push(worker);
      started.push(listening(worker));
    }
    const results = await Promise.allSettled(started);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      throw failure.reason;
    }
    const pool = new UdpAnswerWorkers(workers, new Float64Array(shared), hooks);
    for (const worker of workers) pool.#watch(worker);
    return pool;
  }

  get size(): number {
    return this.#workers.length;
  }

  /** Queries each worker has answered so far (whole or cut by the rate limit), by worker. */
  answeredByWorker(): number[] {
    return this.#workers.map((_, index) => this.#counts[2 * index]! + this.#counts[2 * index + 1]!);
  }

  /** Adds what the workers counted since the last flush to the metrics. */
  flushCounts(): void {
    let answered = 0;
    let limited = 0;
    for (let slot = 0; slot < this.#counts.length; slot++) {
      const now = this.#counts[slot]!;
      const delta = now - this.#flushed[slot]!;
      this.#flushed[slot] = now;
      if (slot % 2 === 0) answered += delta;
      else limited += delta;
    }
    if (answered > 0 || limited > 0) this.#hooks.onCounts(answered, limited);
  }

  /** Ends every worker (their sockets close with them) and counts what they answered. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
    this.flushCounts();
  }

  #watch(worker: Worker): void {
    const { logger } = this.#hooks;
    worker.on('message', (event: UdpWorkerEvent) => {
      if (event.kind === 'queries') readHandovers(event.frames, this.#onQuery);
      else if (event.kind === 'error') logger.error({ err: event.message }, 'dns udp worker socket error');
    });
    worker.on('error', (err) => logger.error({ err }, 'dns udp worker failed'));
    // A worker that died has closed its socket, and the kernel gives its clients to the other sockets.
    worker.on('exit', (code) => {
      if (!this.#closed) logger.error({ code }, 'dns udp worker exited; the other sockets answer its clients');
    });
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
