import { hostname } from 'node:os';
import type { OperationsContext } from '../admin/operations-context.js';
import type { Metrics } from '../metrics/metrics.js';
import { historyKey, ReplicaSummaries } from './replica-summaries.js';
import { MINUTE_MS, RequestHistory } from './request-history.js';
import { summarize, type StatusSummary } from './status-summary.js';

/** How often the history is saved to the records (and, on a shared index, this replica's summary published). */
export const SAVE_INTERVAL_MS = MINUTE_MS;
const PUBLISH_INTERVAL_MS = 30_000;

// One board per app: the status routes are registered on two listeners (the operations listener
// and https://docker.proxy/), and both must show, count and save one history.
const boards = new WeakMap<Metrics, StatusBoard>();

/**
 * The status page's state for one app: the request history fed by `metrics.onRequest`, restored
 * from the cache's records at start and saved there every minute and when the last listener
 * showing it closes; on a shared index, this replica's summary published for the others.
 */
export class StatusBoard {
  readonly history = new RequestHistory();
  /** This replica's name on the page and in the shared index: its PEER_ADDRESS, else the host name. */
  readonly replica: string;
  readonly #context: OperationsContext;
  readonly #historyKey: string;
  readonly #replicas: ReplicaSummaries | null;
  #users = 0;
  #timers: NodeJS.Timeout[] = [];
  #evictionsSeen = { evictions: 0, bytes: 0 };

  static for(context: OperationsContext): StatusBoard {
    let board = boards.get(context.metrics);
    if (!board) boards.set(context.metrics, (board = new StatusBoard(context)));
    return board;
  }

  private constructor(context: OperationsContext) {
    this.#context = context;
    const { peerAddress, cacheIndex } = context.config;
    this.replica = peerAddress ? `${peerAddress.host}:${peerAddress.port}` : hostname();
    const shared = cacheIndex.kind !== 'sqlite';
    // Replicas of a shared index keep a history each: the records are the fleet's.
    this.#historyKey = historyKey(shared ? this.replica : null);
    this.#replicas = shared ? new ReplicaSummaries(context.cache) : null;
    this.history.restore(context.cache.getRecord<unknown>(this.#historyKey));
    this.history.dirty = false;
    context.metrics.onRequest((request, times) => this.history.record(request, times));
  }

  /** A listener shows the board: the first one starts the timers. */
  retain(): void {
    if (this.#users++ > 0) return;
    const run = (task: () => Promise<void>, what: string) => (): void =>
      void task().catch((error: unknown) => this.#context.logger.warn({ err: error }, `status page: ${what} failed`));
    const every = (ms: number, task: () => void): void => {
      const timer = setInterval(task, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(SAVE_INTERVAL_MS, run(() => this.save(), 'saving its history'));
    if (this.#replicas) {
      const publish = run(() => this.publish(), 'publishing this replica\'s summary');
      // At once too: the other replicas' pages show this one from its start, not half a minute later.
      setImmediate(publish);
      every(PUBLISH_INTERVAL_MS, publish);
    }
  }

  /** A listener closed: the last one stops the timers and saves (before the cache closes). */
  async release(): Promise<void> {
    if (--this.#users > 0) return;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    await this.save();
  }

  async summary(): Promise<StatusSummary> {
    this.#context.metrics.flushTally();
    await this.#sampleEvictions();
    const replicas = this.#replicas ? this.#replicas.seen().filter((r) => r.name !== this.replica) : [];
    const summary = await summarize(this.#context, this.history, this.replica);
    return this.#replicas ? { ...summary, replicas: [this.#ownSummary(summary), ...replicas] } : summary;
  }

  /** Writes the history to the cache's records if it changed. */
  async save(): Promise<void> {
    this.#context.metrics.flushTally();
    await this.#sampleEvictions();
    if (!this.history.dirty) return;
    this.history.dirty = false;
    try {
      await this.#context.cache.setRecord(this.#historyKey, this.history.snapshot());
    } catch (error) {
      this.history.dirty = true;
      throw error;
    }
  }

  async publish(): Promise<void> {
    this.#context.metrics.flushTally();
    const summary = await summarize(this.#context, this.history, this.replica);
    await this.#replicas?.publish(this.#ownSummary(summary));
  }

  #ownSummary(summary: StatusSummary) {
    const { bytes, maxSize, entries } = summary.cache;
    return { name: this.replica, at: summary.generatedAt, windows: summary.windows, cache: { bytes, maxSize, entries } };
  }

  /** Evictions are counted by the cache, not per request: their counters' growth goes into the history. */
  async #sampleEvictions(): Promise<void> {
    const [evictions, bytes] = await Promise.all([this.#context.metrics.evictions.get(), this.#context.metrics.evictedBytes.get()]);
    const now = { evictions: evictions.values.reduce((t, v) => t + v.value, 0), bytes: bytes.values.reduce((t, v) => t + v.value, 0) };
    this.history.recordEvictions(now.evictions - this.#evictionsSeen.evictions, now.bytes - this.#evictionsSeen.bytes);
    this.#evictionsSeen = now;
  }
}
