import type { Pool } from 'pg';
import type { RowSwap, SwapRow } from './row-swap.js';

/**
 * One statement for a batch. An UPDATE whose row another transaction changed first is judged again on
 * the row as that one left it (READ COMMITTED's recheck), so `value IS NOT DISTINCT FROM` the version
 * holds when the row is written; a row expected absent is inserted only if none exists (ON CONFLICT DO
 * NOTHING). A row's version is its text: Postgres hands TEXT over unchanged.
 */
const swapStatement = (table: string): string => `WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS i(key, version, value)
  ), updated AS (
    UPDATE ${table} AS t SET value = input.value FROM input
    WHERE t.key = input.key AND t.value IS NOT DISTINCT FROM input.version
    RETURNING t.key
  ), inserted AS (
    INSERT INTO ${table} (key, value) SELECT key, value FROM input WHERE version IS NULL
    ON CONFLICT (key) DO NOTHING
    RETURNING key
  )
  SELECT key FROM updated UNION ALL SELECT key FROM inserted`;

/** Compare-and-set on the index's Postgres table, keys under `prefix` (as @keyv/postgres stores them). */
export function postgresRowSwap(pool: Pool, table: string, prefix: string): RowSwap {
  const select = `SELECT key, value FROM ${table} WHERE key = ANY($1::text[])`;
  const swap = swapStatement(table);
  return {
    async read(keys) {
      const { rows } = await pool.query(select, [keys.map((key) => prefix + key)]);
      const texts = new Map(rows.map((row) => [String(row.key), row.value]));
      return keys.map((key) => {
        const text: unknown = texts.get(prefix + key);
        return typeof text === 'string' ? { text, version: text } : null;
      });
    },
    async write(rows: readonly SwapRow[]) {
      // In key order, so that two replicas writing the same keys ask for their rows in one order.
      const sorted = [...rows].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const result = await pool.query(swap, [sorted.map(({ key }) => prefix + key), sorted.map(({ version }) => version), sorted.map(({ text }) => text)]);
      const written = new Set(result.rows.map((row) => String(row.key)));
      return rows.map(({ key }) => written.has(prefix + key));
    },
  };
}
