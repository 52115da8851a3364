import type { Pool } from 'pg';
import { checkLeaseName, checkLeaseRequest, grantedLease, holderValue, noteOfHolder, type Lease, type LeaseOptions, type LeaseStore } from '../lease.js';
import { SCHEMA } from './postgres-schema.js';

export const LEASE_TABLE = `${SCHEMA}.layover_leases`;

export const CREATE_LEASE_TABLE = `CREATE TABLE IF NOT EXISTS ${LEASE_TABLE} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)`;

// One statement takes a free or expired lease and bumps its token; rows are never deleted, so the token
// of a name only grows. The server's clock decides expiry: replicas' clocks may disagree.
const ACQUIRE = `INSERT INTO ${LEASE_TABLE} AS l (name, holder, token, expires_at)
  VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
  ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = l.token + 1, expires_at = excluded.expires_at
  WHERE l.expires_at <= clock_timestamp()
  RETURNING token`;
const RENEW = `UPDATE ${LEASE_TABLE} SET expires_at = clock_timestamp() + $3 * interval '1 millisecond'
  WHERE name = $1 AND holder = $2 AND expires_at > clock_timestamp()`;
const RELEASE = `UPDATE ${LEASE_TABLE} SET expires_at = clock_timestamp() WHERE name = $1 AND holder = $2 AND expires_at > clock_timestamp()`;
// An unfenced lease's row goes with it: its token does not matter, and one row per digest ever filled would pile up.
const FORGET = `DELETE FROM ${LEASE_TABLE} WHERE name = $1 AND holder = $2`;
const HOLDER = `SELECT holder FROM ${LEASE_TABLE} WHERE name = $1 AND expires_at > clock_timestamp()`;

/** Leases as rows of `layover_leases` in the index's Postgres. */
export class PostgresLeaseStore implements LeaseStore {
  private readonly pool: Pool;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  async acquireLease(name: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | null> {
    checkLeaseRequest(name, ttlMs, options);
    const holder = holderValue(options.note);
    const asked = Date.now();
    const { rows } = await this.pool.query(ACQUIRE, [name, holder, ttlMs]);
    const row = rows[0];
    if (!row) return null;
    // BIGINT arrives as a string; tokens stay far below 2^53.
    const token = options.unfenced ? 0 : Number(row.token);
    return grantedLease(name, token, asked, ttlMs, {
      renew: async () => (await this.pool.query(RENEW, [name, holder, ttlMs])).rowCount === 1,
      release: async () => {
        await this.pool.query(options.unfenced ? FORGET : RELEASE, [name, holder]);
      },
    });
  }

  async leaseNote(name: string): Promise<string | null> {
    checkLeaseName(name);
    const { rows } = await this.pool.query(HOLDER, [name]);
    const holder: unknown = rows[0]?.holder;
    return typeof holder === 'string' ? noteOfHolder(holder) : null;
  }
}
