import { checkLeaseRequest, type Lease, type LeaseStore } from '../lease.js';

interface Holding {
  token: number;
  expiresAt: number;
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

  async acquireLease(name: string, ttlMs: number): Promise<Lease | null> {
    checkLeaseRequest(name, ttlMs);
    const key = `${this.scope}\n${name}`;
    const now = Date.now();
    const current = holdings.get(key);
    if (current && current.expiresAt > now) return null;
    const token = (lastTokens.get(key) ?? 0) + 1;
    lastTokens.set(key, token);
    const holding: Holding = { token, expiresAt: now + ttlMs };
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
}
