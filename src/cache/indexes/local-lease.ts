import { checkLeaseName, checkLeaseRequest, type Lease, type LeaseOptions, type LeaseStore } from '../lease.js';

interface Holding {
  token: number;
  expiresAt: number;
  note: string;
}

const holdings = new Map<string, Holding>();
const lastTokens = new Map<string, number>();

/**
 * Leases for an index only one process uses (SQLite in the data directory, which the directory lock
 * keeps to one Layover): held in this process's memory, shared by every index object on the same
 * scope, so the same code path runs as with a shared backend.
 */
export class LocalLeaseStore implements LeaseStore {
  private readonly scope: string;

  constructor(scope: string) {
    this.scope = scope;
  }

  async acquireLease(name: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | null> {
    checkLeaseRequest(name, ttlMs, options);
    const key = `${this.scope}\n${name}`;
    const now = Date.now();
    const current = holdings.get(key);
    if (current && current.expiresAt > now) return null;
    const token = options.unfenced ? 0 : (lastTokens.get(key) ?? 0) + 1;
    if (!options.unfenced) lastTokens.set(key, token);
    const holding: Holding = { token, expiresAt: now + ttlMs, note: options.note ?? '' };
    holdings.set(key, holding);
    return {
      name,
      token,
      get expiresAt() {
        return holding.expiresAt;
      },
      async renew() {
        const at = Date.now();
        if (holdings.get(key) !== holding || holding.expiresAt <= at) return false;
        holding.expiresAt = at + ttlMs;
        return true;
      },
      async release() {
        if (holdings.get(key) === holding) holdings.delete(key);
      },
    };
  }

  async leaseNote(name: string): Promise<string | null> {
    checkLeaseName(name);
    const current = holdings.get(`${this.scope}\n${name}`);
    return current && current.expiresAt > Date.now() ? current.note : null;
  }
}
