import { cacheLifetime } from './cache-lifetime.js';

interface Entry {
  reply: Buffer;
  ttlOffsets: number[];
  /** The TTL fields as received, so each copy served counts down from them. */
  ttls: number[];
  storedAt: number;
  expiresAt: number;
}

/**
 * A bounded LRU of forwarded answers, keyed by question (see questionKey).
 * Entries live as long as their TTLs allow (cacheLifetime); a served copy has
 * every TTL lowered by the whole seconds it spent here, as a resolver must
 * (RFC 1035 §7.3), so downstream caches do not extend an answer's life.
 */
export class AnswerCache {
  // A Map iterates in insertion order: re-inserting on a hit keeps the least
  // recently used entry first, where eviction takes it from.
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #now: () => number;

  /** `now` returns milliseconds on a monotonic clock; tests pass their own. */
  constructor(maxEntries: number, now: () => number = () => performance.now()) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new Error(`dns cacheEntries: expected a count, got ${maxEntries}`);
    this.#maxEntries = maxEntries;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Stores `reply` under `key` when it may be cached; returns whether it was. */
  set(key: string, reply: Buffer): boolean {
    if (this.#maxEntries === 0) return false;
    const lifetime = cacheLifetime(reply);
    if (!lifetime) return false;
    const copy = Buffer.from(reply);
    const storedAt = this.#now();
    this.#entries.delete(key);
    this.#entries.set(key, {
      reply: copy,
      ttlOffsets: lifetime.ttlOffsets,
      ttls: lifetime.ttlOffsets.map((offset) => copy.readUInt32BE(offset)),
      storedAt,
      expiresAt: storedAt + lifetime.ttl * 1000,
    });
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    return true;
  }

  /** A fresh copy of the answer with its TTLs counted down, or undefined when absent or expired. */
  get(key: string): Buffer | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    const now = this.#now();
    if (now >= entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    const elapsed = Math.floor((now - entry.storedAt) / 1000);
    const out = Buffer.from(entry.reply);
    for (let i = 0; i < entry.ttlOffsets.length; i++) {
      out.writeUInt32BE(Math.max(0, entry.ttls[i]! - elapsed), entry.ttlOffsets[i]!);
    }
    return out;
  }

  clear(): void {
    this.#entries.clear();
  }
}
