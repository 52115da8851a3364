import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { SharedTokenStore } from './token-cache.js';

/** The records of the cache index (BlobCache): other replicas see a change by its key, then read the value from the index. */
export interface RecordStore {
  getRecord<T>(key: string): T | undefined;
  setRecord<T>(key: string, value: T): Promise<void>;
  deleteRecord(key: string): Promise<void>;
  recordKeys(prefix: string): string[];
}

export interface SharedTokensOptions {
  records: RecordStore;
  /** A secret every replica holds and the index does not: the redirect signing key (REDIRECT_KEY_FILE). */
  secret: Buffer;
  /** A write or delete of the index failed: the token still works here, the others fetch their own. */
  onError: (error: unknown) => void;
  /** At most this many tokens are kept in the index; those that expire first go first. */
  maxRecords?: number;
  now?: () => number;
}

const PREFIX = 'upstream-token:';
const DEFAULT_MAX_RECORDS = 1_000;
/** Larger tokens stay in this replica's memory only: records are meant to be small. */
const MAX_TOKEN_BYTES = 8 * 1024;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A token as the index holds it: AES-256-GCM under a key only the replicas have; its expiry in clear, but bound to it. */
interface SealedToken {
  v: 1;
  expiresAt: number;
  iv: string;
  tag: string;
  data: string;
}

/** A record another replica (or anyone who can write the index) left there: hostile until checked. */
function isSealed(value: unknown): value is SealedToken {
  if (typeof value !== 'object' || value === null) return false;
  const { v, expiresAt, iv, tag, data } = value as Partial<Record<keyof SealedToken, unknown>>;
  return (
    v === 1 &&
    typeof expiresAt === 'number' &&
    Number.isFinite(expiresAt) &&
    [iv, tag, data].every((part) => typeof part === 'string' && BASE64URL.test(part) && part.length <= (MAX_TOKEN_BYTES * 4) / 3 + 4)
  );
}

/**
 * Upstream bearer tokens shared between replicas through the cache index's records, so that a
 * replica that starts (or restarts) uses the tokens the others fetched instead of asking every
 * realm again. Tokens are credentials: the index holds them only sealed (AES-256-GCM, a fresh IV
 * each, the record's name and expiry as associated data, so a record cannot be moved to another
 * name or given a longer life), under a key derived with HKDF from the redirect signing key that
 * replicas share and the index never sees; record names are an HMAC of the cache key, so they tell
 * nothing about registries, scopes or accounts, and the change feed carries only those names.
 * A record that does not open (another key, tampering) counts as absent. Expired records are
 * removed after each write, and at most `maxRecords` are kept.
 */
export class SharedTokens implements SharedTokenStore {
  readonly #records: RecordStore;
  readonly #sealKey: Buffer;
  readonly #nameKey: Buffer;
  readonly #onError: (error: unknown) => void;
  readonly #maxRecords: number;
  readonly #now: () => number;
  #sweeping = false;

  constructor(options: SharedTokensOptions) {
    this.#records = options.records;
    this.#sealKey = Buffer.from(hkdfSync('sha256', options.secret, Buffer.alloc(0), 'layover upstream tokens v1: sealing', 32));
    this.#nameKey = Buffer.from(hkdfSync('sha256', options.secret, Buffer.alloc(0), 'layover upstream tokens v1: names', 32));
    this.#onError = options.onError;
    this.#maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    this.#now = options.now ?? Date.now;
  }

  get(key: string): { token: string; expiresAt: number } | undefined {
    const name = this.#name(key);
    const sealed = this.#records.getRecord<unknown>(name);
    if (!isSealed(sealed) || sealed.expiresAt <= this.#now()) return undefined;
    const token = this.#open(name, sealed);
    return token === null ? undefined : { token, expiresAt: sealed.expiresAt };
  }

  set(key: string, token: string, expiresAt: number): void {
    if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) return;
    const name = this.#name(key);
    this.#records
      .setRecord(name, this.#seal(name, token, expiresAt))
      .then(() => this.#sweep())
      .catch(this.#onError);
  }

  /** Removes the record if it still holds `token` (an upstream refused it): a newer one stays. */
  forget(key: string, token: string): void {
    if (this.get(key)?.token !== token) return;
    this.#records.deleteRecord(this.#name(key)).catch(this.#onError);
  }

  #name(key: string): string {
    return `${PREFIX}${createHmac('sha256', this.#nameKey).update(key).digest('base64url')}`;
  }

  #seal(name: string, token: string, expiresAt: number): SealedToken {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#sealKey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(name, expiresAt));
    const data = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
    return { v: 1, expiresAt, iv: iv.toString('base64url'), tag: cipher.getAuthTag().toString('base64url'), data: data.toString('base64url') };
  }

  #open(name: string, sealed: SealedToken): string | null {
    const iv = Buffer.from(sealed.iv, 'base64url');
    const tag = Buffer.from(sealed.tag, 'base64url');
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#sealKey, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(name, sealed.expiresAt));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      // Sealed under another key, or changed since: as good as no record.
      return null;
    }
  }

  /** Drops expired and unreadable records, then the soonest to expire beyond the bound; one sweep at a time. */
  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const now = this.#now();
      const live: { name: string; expiresAt: number }[] = [];
      const dead: string[] = [];
      for (const name of this.#records.recordKeys(PREFIX)) {
        const sealed = this.#records.getRecord<unknown>(name);
        if (isSealed(sealed) && sealed.expiresAt > now) live.push({ name, expiresAt: sealed.expiresAt });
        else dead.push(name);
      }
      live.sort((a, b) => a.expiresAt - b.expiresAt);
      dead.push(...live.slice(0, Math.max(0, live.length - this.#maxRecords)).map((record) => record.name));
      for (const name of dead) await this.#records.deleteRecord(name);
    } finally {
      this.#sweeping = false;
    }
  }
}

const associatedData = (name: string, expiresAt: number): Buffer => Buffer.from(JSON.stringify(['layover-upstream-token-v1', name, expiresAt]), 'utf8');
