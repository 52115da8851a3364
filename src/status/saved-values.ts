/**
 * Shape checks for JSON read back from the cache's records, which another replica, an older
 * version or a tampered index may have written: nothing is trusted to be what it claims.
 */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** A whole number from 0 up that arithmetic keeps exact. */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The latest time a Date can show (ECMAScript's limit, 8.64e15 ms): beyond it toISOString throws. */
const LATEST_DATE_MS = 8.64e15;

/** A time (ms since the epoch) that a Date can show: a larger one would make every page that prints it fail. */
export function isTime(value: unknown): value is number {
  return isCount(value) && value <= LATEST_DATE_MS;
}

export function countOf(value: unknown): number {
  return isCount(value) ? value : 0;
}
