import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
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
/** Handed back by the worker; a few are enough for every fill in flight to keep gathering. */
const MAX_SPARE_BATCHES = 16;
/** An idle worker goes after this long (an isolate costs RSS); the next fill starts one again. */
const IDLE_MS = 30_000;

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
      return void parentPort.postMessage({ kind: 'spare', bytes: message.bytes }, [message.bytes]);
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
    const bytes = batch.buffer as ArrayBuffer;
    this.post({ kind: 'update', id, bytes, length }, [bytes]);
  }

  digest(id: number): Promise<string> {
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
        if (message.bytes && this.spares.length < MAX_SPARE_BATCHES) this.spares.push(message.bytes);
        return;
      }
      const waiting = this.pending.get(message.id!);
      if (!waiting) return;
      this.pending.delete(message.id!);
      this.finished(message.id!);
      if (message.kind === 'digest') waiting.resolve(message.hex!);
      else waiting.reject(new Error(`hashing failed: ${message.message}`));
    });
    const lost = (error: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // Every hash it held is gone with it: those fills fail (and are fetched again), none is trusted.
      const waiting = [...this.pending.values()];
      this.pending.clear();
      this.open.clear();
      for (const { reject } of waiting) reject(new Error('the hash worker stopped', { cause: error }));
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private finished(id: number): void {
    this.open.delete(id);
    if (this.open.size > 0 || !this.worker) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const worker = this.worker;
      if (this.open.size > 0 || !worker) return;
      this.worker = undefined;
      void worker.terminate();
    }, IDLE_MS);
    this.idleTimer.unref();
  }
}

const shared = new HashWorker();

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
      this.batch = undefined;
      return this.small.digest('hex');
    }
    if (this.filled > 0) this.handOver();
    const id = this.id;
    this.id = undefined;
    return shared.digest(id);
  }

  /** The fill ended without a digest: the worker forgets the hash (after `digest`, nothing is left to forget). */
  drop(): void {
    this.batch = undefined;
    if (this.id !== undefined) shared.drop(this.id);
    this.id = undefined;
  }

  private handOver(): void {
    this.id ??= shared.start(this.algorithm);
    shared.update(this.id, this.batch!, this.filled);
    this.batch = undefined;
    this.filled = 0;
  }
}
