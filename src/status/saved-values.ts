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

export function countOf(value: unknown): number {
  return isCount(value) ? value : 0;
}
