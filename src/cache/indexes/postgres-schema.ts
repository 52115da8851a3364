/**
 * The schema of Layover's Postgres tables. @keyv/postgres names its table with a schema (`public`
 * unless told otherwise); every statement of ours names the same one, so that a search_path whose
 * first schema is another (a `"$user"` schema, or replicas connecting as different users) cannot
 * split the index or the leases over two tables.
 */
export const SCHEMA = 'public';
