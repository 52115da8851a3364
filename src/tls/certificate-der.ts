import { randomBytes } from 'node:crypto';

/**
 * The little DER that Layover's leaf certificates need (X.690 definite lengths), on Buffers.
 * Minting builds a leaf from precomputed pieces with these instead of forge's ASN.1 objects,
 * binary strings and JS hashing, which cost more than the rest of a mint besides the signature.
 */

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  printableString: 0x13,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.of(length);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}

/** One tag-length-value: `tag` over the concatenated `content`. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  return Buffer.concat([Buffer.of(tag), lengthBytes(body.length), body]);
}

export const sequence = (...content: Buffer[]): Buffer => tlv(TAG.sequence, ...content);

/** An OBJECT IDENTIFIER from its dotted form (arcs below 2^53). */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const base128: number[] = [arc % 128];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) base128.unshift(0x80 | rest % 128);
    out.push(...base128);
  }
  return tlv(TAG.oid, Buffer.from(out));
}

const two = (n: number): string => String(n).padStart(2, '0');

/**
 * RFC 5280 4.1.2.5: UTCTime for dates in 1950..2049, GeneralizedTime otherwise, both in UTC to
 * the second (as forge, and every verifier, expects).
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year < 2050) return tlv(TAG.utcTime, Buffer.from(`${two(year % 100)}${rest}`, 'latin1'));
  return tlv(TAG.generalizedTime, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}

/** Where one TLV's content lies inside `der`, and where the next TLV starts. */
interface Element {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

function element(der: Buffer, start: number, limit: number): Element {
  if (start + 2 > limit) throw new Error('DER: truncated element');
  const tag = der[start]!;
  let length = der[start + 1]!;
  let contentStart = start + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || contentStart + count > limit) throw new Error('DER: unsupported length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[contentStart + i]!;
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new Error('DER: element overruns its container');
  return { tag, start, contentStart, end };
}

/** The elements inside the constructed element at `offset` of `der`, each as its own bytes. */
export function children(der: Buffer, offset = 0): Buffer[] {
  const outer = element(der, offset, der.length);
  const out: Buffer[] = [];
  for (let at = outer.contentStart; at < outer.end; ) {
    const inner = element(der, at, outer.end);
    out.push(der.subarray(inner.start, inner.end));
    at = inner.end;
  }
  return out;
}

/** The content of the element at `offset` of `der` (what its tag and length wrap). */
export function contentOf(der: Buffer, offset = 0): Buffer {
  const outer = element(der, offset, der.length);
  return der.subarray(outer.contentStart, outer.end);
}

/**
 * 16 random bytes, positive and minimally encoded as a DER INTEGER (forge and LeafTemplate write
 * them verbatim): a high first bit would make the serial negative and a leading zero byte would
 * be non-minimal DER, both of which strict parsers (Go) reject. Forcing the first byte into
 * 0x40..0x7f keeps 126 random bits (RFC 5280 asks for >= 64 bits of entropy, CA/B Forum for
 * unpredictability).
 */
export function randomSerial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes;
}
