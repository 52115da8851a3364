// The part of `pg` (node-postgres, installed with @keyv/postgres, which ships no types for it) that the
// Postgres index uses: a pool of its own, so that it can listen for the errors of idle connections, and
// one client of its own for LISTEN (the change feed).
declare module 'pg' {
  export interface PoolConfig {
    connectionString?: string;
    max?: number;
    connectionTimeoutMillis?: number;
    idleTimeoutMillis?: number;
    application_name?: string;
  }
  export class Pool {
    constructor(config?: PoolConfig);
    query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'connect', listener: (client: { on(event: 'error', listener: (error: Error) => void): unknown }) => void): this;
    end(): Promise<void>;
  }
  export interface Notification {
    channel: string;
    payload?: string;
  }
  export class Client {
    constructor(config?: PoolConfig);
    connect(): Promise<void>;
    query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'end', listener: () => void): this;
    on(event: 'notification', listener: (message: Notification) => void): this;
    end(): Promise<void>;
  }
  const pg: { Pool: typeof Pool; Client: typeof Client };
  export default pg;
}
