import { randomUUID } from 'node:crypto';
import type { Digest } from '../registry/digest.js';

/**
 * A lease on a fleet-wide job (eviction, reconciliation): held by one replica at a time until it is
 * released or its time runs out. The holder must renew it well within `ttlMs`; a renew that answers
 * false means the lease was lost (it expired, or another replica holds it now) and the job must stop.
 *
 * `token` is a fencing token: every acquisition of one name gets a larger number than the one before,
 * so a store that remembers the largest token it has seen can refuse a stale holder's late writes.
 */
export interface Lease {
  readonly name: string;
  readonly token: number;
  /** Epoch ms by this process's clock, measured from before the request: never later than the real expiry. */
  readonly expiresAt: number;
  /** Extends the lease by its ttl; false when it is no longer this holder's; rejects when the backend cannot be reached. */
  renew(): Promise<boolean>;
  /** Gives the lease up if it is still this holder's; a stale holder's release leaves the new holder's alone. */
  release(): Promise<void>;
}

export interface LeaseOptions {
  /** What anyone asking (`leaseNote`) learns of the holder; for a fill, where peers reach it. At most 200 characters. */
  readonly note?: string;
  /**
   * For leases taken once per thing (a fill per digest): not fenced (token 0), and a release leaves
   * nothing behind in the store, so that their number does not grow with everything ever filled.
   */
  readonly unfenced?: boolean;
}

export interface LeaseStore {
  /** The lease, or null while another holder has it; rejects when the backend cannot be reached (then nobody may assume it). */
  acquireLease(name: string, ttlMs: number, options?: LeaseOptions): Promise<Lease | null>;
  /** The note of the lease's holder ('' if it left none), or null when nobody holds it; rejects when the backend cannot be reached. */
  leaseNote(name: string): Promise<string | null>;
}

const LEASE_NAME = /^[a-z0-9][a-z0-9._-]{0,159}$/;
export const MAX_NOTE = 200;

export function checkLeaseName(name: string): void {
  if (!LEASE_NAME.test(name)) throw new RangeError(`lease name: expected up to 160 of a-z 0-9 . _ -, got ${JSON.stringify(name)}`);
}

/** What a shared backend stores as the holder: a value unique to this acquisition, then the note. */
export function holderValue(note: string | undefined): string {
  return `${randomUUID()}\n${note ?? ''}`;
}

/** The note of a stored holder value; '' for one without (written before notes existed). */
export function noteOfHolder(holder: string): string {
  const newline = holder.indexOf('\n');
  return newline < 0 ? '' : holder.slice(newline + 1);
}

/** Lease names end up in keys and rows: a short, plain name, checked once for every backend. */
export function checkLeaseRequest(name: string, ttlMs: number, options: LeaseOptions = {}): void {
  checkLeaseName(name);
  if (options.note !== undefined && options.note.length > MAX_NOTE) throw new RangeError(`lease note: expected at most ${MAX_NOTE} characters, got ${options.note.length}`);
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > 86_400_000) throw new RangeError(`lease ttl: expected 1 ms to 1 day, got ${ttlMs}`);
}

/**
 * A lease a shared backend granted at `askedAt` (local time, taken before the request, so `expiresAt`
 * errs early); `renewOnBackend` answers whether the backend still had it as this holder's.
 */
export function grantedLease(
  name: string,
  token: number,
  askedAt: number,
  ttlMs: number,
  backend: { renew(): Promise<boolean>; release(): Promise<void> },
): Lease {
  let expiresAt = askedAt + ttlMs;
  return {
    name,
    token,
    get expiresAt() {
      return expiresAt;
    },
    async renew() {
      const renewedAt = Date.now();
      if (!(await backend.renew())) return false;
      expiresAt = renewedAt + ttlMs;
      return true;
    },
    release: () => backend.release(),
  };
}

/**
 * The lease a replica holds while it fetches a blob from upstream (one upstream fetch per digest across
 * the fleet): while it is held, the holder's upload of that digest is live, and nobody else fetches it.
 */
export function fillLeaseName(digest: Digest): string {
  return `fill.${digest.replace(':', '.')}`;
}
