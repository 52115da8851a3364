import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { freeMemory, ownsItsMemory } from '../memory/free-now.js';
import { digestAlgorithm, type Digest } from '../registry/digest.js';

/**
 * SHA-256 costs about 0.7 s of CPU per GiB (REGISTRY-NOTES); on the main thread that was a quarter of
 * a miss's time, while the other cores waited. A fill's hash is kept by one worker thread instead: the
 * main thread copies each MiB gathered into a buffer of its own and hands it over (the copy costs
 * about a tenth of the hashing), the worker hashes it and hands the buffer back for the next MiB.
 *
 * Blobs smaller than one batch (manifests, configs) never reach the worker: they are hashed in place
 * when the digest is asked for.
 */
const BATCH_BYTES = 1024 * 1024;
/**
 * Handed back by the worker; a few are enough for every fill in flight to keep gathering. None is kept
 * once no fill runs, and those let go are freed at once: left to the collector, a burst's MiBs stayed
 * resident for as long as Layover was idle (5 MB after two 64 MiB fills here).
 */
const MAX_SPARE_BATCHES = 16;
/**
 * Batches of one fill handed over and not yet hashed: beyond this the fill waits (and with it its
 * source), as it did when it hashed on the main thread; a fast upstream cannot pile up memory.
 */
const MAX_BATCHES_IN_FLIGHT = 4;
/**
 * An idle worker goes after this long; the next fill starts one again (under 2 ms of the main thread,
 * 34-61 ms before its first MiB is hashed, bench/README.md, nineteenth session: a fill that outruns
 * that waits once 4 MiB are queued). Its isolate costs RSS while it lives: after 30 s it was still
 * there when the 8-client bench's warm burst began, 26 s after the last fill, and the burst's peak read
 * 143-146 MB against 133-135 with 10 s (bench/README.md, eighteenth session).
 */
const IDLE_MS = 10_000;

/** Runs as CommonJS in the worker (`eval`), so it needs no file of its own next to the build. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (message) => {
  const { id, kind } = message;
  try {
    if (kind === 'start') return void hashes.set(id, createHash(message.algorithm));
    const hash = hashes.get(id);
    if (!hash) throw new Error('no hash ' + id);
    if (kind === 'update') {
      hash.update(new Uint8Array(message.bytes, 0, message.length));
      return void parentPort.postMessage({ kind: 'spare', id, bytes: message.bytes }, [message.bytes]);
    }
    hashes.delete(id);
    if (kind === 'digest') parentPort.postMessage({ kind: 'digest', id, hex: hash.digest('hex') });
  } catch (error) {
    parentPort.postMessage({ kind: 'failed', id, message: String(error && error.message || error) });
  }
});
`;

interface Pending {
  resolve(hex: string): void;
  reject(error: Error): void;
}

/** The one hash worker of the process, started by the first fill that needs it. */
class HashWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  /** Hashes a worker no longer has (it was replaced after a crash): their digest is refused at once. */
  private readonly broken = new Set<number>();
  /** Per hash: batches handed over and not yet hashed, and who waits for that number to drop. */
  private readonly inFlight = new Map<number, { batches: number; waiters: Array<() => void> }>();
  private readonly spares: ArrayBuffer[] = [];
  private nextId = 1;
  /** Hashes started and not yet digested or dropped: the worker stays while there are any. */
  private readonly open = new Set<number>();
  private idleTimer: NodeJS.Timeout | undefined;

  batch(): Buffer {
    const spare = this.spares.pop();
    return spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  start(algorithm: string): number {
    const id = this.nextId++;
    this.open.add(id);
    clearTimeout(this.idleTimer);
    this.post({ kind: 'start', id, algorithm });
    return id;
  }

  /** Hands `batch` over (it must not be touched afterwards). */
  update(id: number, batch: Buffer, length: number): void {
    if (this.broken.has(id)) return;
    const bytes = batch.buffer as ArrayBuffer;
    const flight = this.inFlight.get(id) ?? { batches: 0, waiters: [] };
    flight.batches += 1;
    this.inFlight.set(id, flight);
    this.post({ kind: 'update', id, bytes, length }, [bytes]);
  }

  /** Resolves once hash `id` has at most MAX_BATCHES_IN_FLIGHT batches waiting for the worker. */
  room(id: number): Promise<void> | undefined {
    const flight = this.inFlight.get(id);
    if (!flight || flight.batches <= MAX_BATCHES_IN_FLIGHT) return undefined;
    return new Promise((resolve) => flight.waiters.push(resolve));
  }

  private hashed(id: number): void {
    const flight = this.inFlight.get(id);
    if (!flight) return;
    flight.batches -= 1;
    if (flight.batches <= MAX_BATCHES_IN_FLIGHT) for (const wake of flight.waiters.splice(0)) wake();
  }

  /** A batch no hash needs any more: kept for fills still running, else freed now. */
  giveBack(memory: ArrayBuffer): void {
    if (this.open.size > 0 && this.spares.length < MAX_SPARE_BATCHES) this.spares.push(memory);
    else freeMemory(memory);
  }

  digest(id: number): Promise<string> {
    if (this.broken.delete(id)) {
      this.finished(id);
      return Promise.reject(new Error('the hash worker stopped while this blob was hashed'));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ kind: 'digest', id });
    });
  }

  /** A fill that stopped before asking for its digest. */
  drop(id: number): void {
    if (this.worker) this.post({ kind: 'drop', id });
    this.finished(id);
  }

  private post(message: object, transfer: ArrayBuffer[] = []): void {
    this.running().postMessage(message, transfer);
  }

  private running(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 } });
    // Hashing is never a reason to keep the process alive.
    worker.unref();
    worker.on('message', (message: { kind: string; id?: number; hex?: string; message?: string; bytes?: ArrayBuffer }) => {
      if (message.kind === 'spare') {
        if (message.bytes) this.giveBack(message.bytes);
        return this.hashed(message.id!);
      }
      const waiting = this.pending.get(message.id!);
      if (!waiting) {
        // A batch of a hash this worker never started (its first worker died): nothing it hashes counts.
        if (message.kind === 'failed') this.breakHash(message.id!);
        return;
      }
      this.pending.delete(message.id!);
      this.finished(message.id!);
      if (message.kind === 'digest') waiting.resolve(message.hex!);
      else waiting.reject(new Error(`hashing failed: ${message.message}`));
    });
    const lost = (error: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.forgetAll(new Error('the hash worker stopped', { cause: error }));
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private breakHash(id: number): void {
    this.broken.add(id);
    const flight = this.inFlight.get(id);
    this.inFlight.delete(id);
    for (const wake of flight?.waiters ?? []) wake();
  }

  /**
   * Every hash the worker held is gone with it: digests asked for are rejected (those fills fail and are
   * fetched again, none is trusted), and fills still feeding are woken to find out at their digest.
   */
  private forgetAll(error: Error): void {
    for (const id of this.open) if (!this.pending.has(id)) this.broken.add(id);
    for (const id of this.inFlight.keys()) this.breakHash(id);
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.open.clear();
    for (const { reject } of waiting) reject(error);
  }

  private finished(id: number): void {
    this.open.delete(id);
    this.inFlight.delete(id);
    this.broken.delete(id);
    if (this.open.size === 0) for (const spare of this.spares.splice(0)) freeMemory(spare);
    if (this.open.size > 0 || this.pending.size > 0 || !this.worker) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const worker = this.worker;
      if (this.open.size > 0 || this.pending.size > 0 || !worker) return;
      this.worker = undefined;
      this.forgetAll(new Error('the hash worker was stopped while idle'));
      void worker.terminate();
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  /** For tests: batches kept for the next updates. */
  get spareCount(): number {
    return this.spares.length;
  }

  /** For tests: what a worker that dies does to the hashes it holds. */
  async crashForTests(): Promise<void> {
    await this.worker?.terminate();
  }
}

const shared = new HashWorker();

/** For tests: how many batches the process keeps for hashes to come. */
export function spareHashBatchesForTests(): number {
  return shared.spareCount;
}

/** For tests: ends the worker as a crash would; the hashes it held fail their digests. */
export function crashHashWorkerForTests(): Promise<void> {
  return shared.crashForTests();
}

/**
 * The running hash of one fill: `update` with every chunk in order, then `digest` once (or `drop`).
 * A worker that stops mid-fill fails the digest: the fill is never committed on a hash it did not finish.
 */
export class OffThreadHash {
  private readonly algorithm: string;
  private id: number | undefined;
  private batch: Buffer | undefined;
  private filled = 0;
  /** Until the first batch is full, the bytes are only gathered: a small blob is hashed here. */
  private small: Hash | undefined;

  constructor(digest: Digest) {
    this.algorithm = digestAlgorithm(digest);
  }

  update(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      this.batch ??= shared.batch();
      const copied = chunk.copy(this.batch, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === this.batch.length) this.handOver();
    }
  }

  async digest(): Promise<string> {
    if (this.id === undefined) {
      // Never reached a full batch: hashed here, the worker is not bothered.
      this.small = createHash(this.algorithm);
      if (this.batch) this.small.update(this.batch.subarray(0, this.filled));
      this.releaseBatch();
      return this.small.digest('hex');
    }
    if (this.filled > 0) this.handOver();
    const id = this.id;
    this.id = undefined;
    return shared.digest(id);
  }

  /** Resolves when this hash may take more: a fill awaits it before reading on from its source. */
  room(): Promise<void> | undefined {
    return this.id === undefined ? undefined : shared.room(this.id);
  }

  /** The fill ended without a digest: the worker forgets the hash (after `digest`, nothing is left to forget). */
  drop(): void {
    this.releaseBatch();
    if (this.id !== undefined) shared.drop(this.id);
    this.id = undefined;
  }

  /** The batch being gathered, no longer needed: back to the spares, or freed (a small blob's MiB need not wait for a collection). */
  private releaseBatch(): void {
    const batch = this.batch;
    this.batch = undefined;
    if (batch && ownsItsMemory(batch)) shared.giveBack(batch.buffer as ArrayBuffer);
  }

  private handOver(): void {
    this.id ??= shared.start(this.algorithm);
    shared.update(this.id, this.batch!, this.filled);
    this.batch = undefined;
    this.filled = 0;
  }
}
