import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { OciError } from '../../registry/oci-errors.js';

/**
 * Checks waiting for the worker beyond the one it runs: a sign-in storm of a whole build farm fits
 * (each credential is checked once and then remembered, ./remembered.ts), even from one address (a
 * NAT, a load balancer); beyond it a check is refused at once with 503 unless a source with at least
 * two more checks waiting gives up its newest, so a stranger sending new passwords in a loop holds
 * at most the queue, and every other source still gets a place and the next turns.
 */
const MAX_WAITING = 32;
/** An idle worker goes after this long (its isolate costs RSS); the next sign-in starts one again. */
const IDLE_MS = 10_000;

/** Runs as CommonJS in the worker (`eval`): bcryptjs is required from the path resolved here. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcrypt);
parentPort.on('message', ({ id, password, hash }) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(password, hash);
  } catch {
    // A malformed hash matches nothing.
  }
  parentPort.postMessage({ id, ok });
});
`;

interface Waiting {
  readonly id: number;
  readonly password: string;
  readonly hash: string;
  resolve(ok: boolean): void;
  reject(error: Error): void;
}

const busy = (): OciError => new OciError('UNAVAILABLE', 'too many sign-ins are being checked: retry', undefined, { headers: { 'retry-after': '1' } });

/**
 * bcrypt compares on one worker thread, one at a time. bcryptjs is JavaScript: a cost-10 hash takes
 * tens of milliseconds of CPU, and on the main thread a loop of wrong passwords (each one new, so
 * never remembered) stalled every pull and every cache hit behind it. Here it takes one thread at
 * most, and waiting checks are bounded. Sources (signInSource) take turns, and a full queue makes
 * room for a source with fewer checks waiting: a client sending new passwords without pause delays
 * others' first sign-ins by one check each, not by the whole queue.
 */
export class BcryptChecks {
  readonly #bcryptPath = createRequire(import.meta.url).resolve('bcryptjs');
  #worker: Worker | undefined;
  #running: Waiting | undefined;
  /** Waiting checks by source, in turn order: the source served last goes to the back. */
  readonly #waiting = new Map<string, Waiting[]>();
  #waitingCount = 0;
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;

  /** True when `password` matches the bcrypt `hash`; rejects with 503 UNAVAILABLE when too many checks wait. */
  compare(password: string, hash: string, source = ''): Promise<boolean> {
    const queue = this.#waiting.get(source);
    if (this.#waitingCount >= MAX_WAITING && !this.#makeRoomFor(queue?.length ?? 0)) return Promise.reject(busy());
    return new Promise<boolean>((resolve, reject) => {
      const check = { id: this.#nextId++, password, hash, resolve, reject };
      if (queue) queue.push(check);
      else this.#waiting.set(source, [check]);
      this.#waitingCount++;
      this.#next();
    });
  }

  /** Ends the worker; waiting checks are refused. */
  async close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    const worker = this.#worker;
    this.#worker = undefined;
    this.#fail(new OciError('UNAVAILABLE', 'Layover is shutting down'));
    await worker?.terminate();
  }

  /**
   * The queue is full: the source with the most checks waiting gives up its newest (503) when it has
   * more than one beyond `mine`, so that no source keeps another out. False when none has.
   */
  #makeRoomFor(mine: number): boolean {
    let largest: Waiting[] | undefined;
    for (const queue of this.#waiting.values()) if (!largest || queue.length > largest.length) largest = queue;
    if (!largest || largest.length <= mine + 1) return false;
    this.#waitingCount--;
    largest.pop()!.reject(busy());
    return true;
  }

  #next(): void {
    if (this.#running) return;
    const turn = this.#waiting.entries().next();
    if (turn.done) {
      this.#idleTimer = setTimeout(() => void this.close(), IDLE_MS);
      this.#idleTimer.unref();
      return;
    }
    const [source, queue] = turn.value;
    const check = queue.shift()!;
    this.#waitingCount--;
    // Round robin: this source's next check waits behind every other source's first.
    this.#waiting.delete(source);
    if (queue.length > 0) this.#waiting.set(source, queue);
    clearTimeout(this.#idleTimer);
    this.#running = check;
    try {
      this.#started().postMessage({ id: check.id, password: check.password, hash: check.hash });
    } catch (error) {
      // No worker (threads or memory exhausted): this check and those waiting fail; the next tries again.
      this.#fail(new OciError('UNAVAILABLE', 'credentials cannot be checked now', undefined, { cause: error }));
    }
  }

  #started(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcrypt: this.#bcryptPath } });
    // Sign-ins keep nothing alive: an idle process may exit.
    worker.unref();
    worker.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
      const check = this.#running;
      if (check?.id !== id) return;
      this.#running = undefined;
      check.resolve(ok);
      this.#next();
    });
    worker.on('error', (error) => this.#lost(worker, error));
    worker.on('exit', (code) => this.#lost(worker, new Error(`the bcrypt worker exited with ${code}`)));
    this.#worker = worker;
    return worker;
  }

  /** The worker died: its check and the waiting ones fail (503); the next sign-in starts another. */
  #lost(worker: Worker, error: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    this.#fail(new OciError('UNAVAILABLE', 'credentials cannot be checked now', undefined, { cause: error }));
  }

  #fail(error: Error): void {
    const failed = [...(this.#running ? [this.#running] : []), ...[...this.#waiting.values()].flat()];
    this.#waiting.clear();
    this.#waitingCount = 0;
    this.#running = undefined;
    for (const check of failed) check.reject(error);
  }
}
