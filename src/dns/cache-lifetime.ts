import { FLAG, HEADER_SIZE, QTYPE, RCODE, readHeader, readQuestion, readRecords, SECTION } from './wire.js';

/** Forwarded answers are kept at most this long, whatever their TTL says. */
export const MAX_POSITIVE_TTL = 86_400;
/** RFC 2308 §5 suggests a cap of hours for negative answers; a caching proxy wants names to appear soon. */
export const MAX_NEGATIVE_TTL = 300;
/** Bigger answers are relayed but not cached, which bounds the cache's memory by entries × this. */
export const MAX_CACHED_BYTES = 4096;

export interface CacheLifetime {
  /** Seconds the answer may be served from cache. */
  ttl: number;
  /** Offsets of every TTL field (all records but OPT), to count them down when served. */
  ttlOffsets: number[];
}

/**
 * How long an upstream reply may be cached, or null when it must not be:
 * truncated, an error other than NXDOMAIN, a negative answer without an SOA
 * to take its lifetime from (RFC 2308 §5), a TTL of 0, or a malformed body.
 */
export function cacheLifetime(reply: Buffer): CacheLifetime | null {
  const header = readHeader(reply);
  if (!header || reply.length > MAX_CACHED_BYTES) return null;
  if ((header.flags & FLAG.TC) !== 0 || header.qdcount !== 1) return null;
  const question = readQuestion(reply, HEADER_SIZE);
  if (!question) return null;
  const records = readRecords(reply, header, question.end);
  if (!records) return null;
  const rcode = header.flags & 0xf;
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) return null;
  // Every record of the answer section, a CNAME chain's included, lives no longer than its own TTL.
  let ttl = MAX_POSITIVE_TTL;
  for (const record of records) if (record.section === SECTION.ANSWER) ttl = Math.min(ttl, ttlSeconds(record.ttl));
  // NXDOMAIN, or no record of the type asked (NODATA, at the end of a CNAME chain or without one), is a
  // negative answer: its lifetime comes from the SOA, capped (RFC 2308 §5), and without one it is not kept.
  const answered = rcode === RCODE.NOERROR && records.some((r) => r.section === SECTION.ANSWER && r.type === question.qtype);
  if (!answered) {
    // SOA RDATA ends with MINIMUM, the last of its five 32-bit fields.
    const soa = records.find((r) => r.section === SECTION.AUTHORITY && r.type === QTYPE.SOA && r.rdlength >= 22);
    if (!soa) return null;
    const minimum = reply.readUInt32BE(soa.rdataOffset + soa.rdlength - 4);
    ttl = Math.min(ttl, MAX_NEGATIVE_TTL, ttlSeconds(soa.ttl), ttlSeconds(minimum));
  }
  if (ttl <= 0) return null;
  return { ttl, ttlOffsets: records.filter((r) => r.type !== QTYPE.OPT).map((r) => r.ttlOffset) };
}

/** RFC 2181 §8: a TTL with the top bit set is treated as zero. */
function ttlSeconds(raw: number): number {
  return raw > 0x7fffffff ? 0 : raw;
}
