// nginx's size and time syntax, because the nginx-based proxies' settings
// (CACHE_MAX_SIZE=32g, MANIFEST_CACHE_PRIMARY_TIME=10m) keep their meaning here.

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `32g` -> bytes. Units k, m, g, t (powers of 1024, any case); a bare number is bytes. */
export function parseSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$/i.exec(text);
  if (!match) return null;
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

const TIME_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  M: 30 * 86_400_000,
  y: 365 * 86_400_000,
};

/**
 * `1h 30m`, `60d`, `300ms` -> milliseconds. nginx units: ms s m h d w M(onth) y;
 * a bare number is seconds, as in nginx.
 */
export function parseDuration(text: string): number | null {
  const compact = text.trim();
  if (/^\d+$/.test(compact)) return Number(compact) * 1000;
  const parts = compact.split(/\s+/);
  let total = 0;
  for (const part of parts) {
    const match = /^(\d+)(ms|s|m|h|d|w|M|y)$/.exec(part);
    if (!match) return null;
    total += Number(match[1]) * TIME_UNITS[match[2]!]!;
  }
  return compact.length > 0 && Number.isSafeInteger(total) ? total : null;
}
