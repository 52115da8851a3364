/**
 * Just enough of the DNS wire format (RFC 1035 §4.1) to serve the hot path
 * without a full decode: the header, the one question, the OPT record, and
 * where each record's TTL sits (for the answer cache). Every reader checks its
 * bounds and returns null (or -1) instead of throwing, because its input is
 * whatever arrived on a socket.
 */

export const HEADER_SIZE = 12;
/**
 * The UDP payload Layover advertises and sends at most (DNS flag day 2020): a reply that fits is not
 * fragmented, and a larger one (cached from TCP) goes with TC=1 whatever a client's EDNS buffer
 * claims, so that a spoofed query with a 64 KiB buffer gets no amplified reply (RFC 6891 §6.2.5).
 */
export const OUR_UDP_PAYLOAD_SIZE = 1232;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
const MAX_NAME_OCTETS = 255;

export const QTYPE = { A: 1, SOA: 6, HINFO: 13, AAAA: 28, OPT: 41, ANY: 255 } as const;
export const QCLASS = { IN: 1, ANY: 255 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;

/** Bits of the header's second 16-bit word. */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, CD: 0x0010 } as const;

export interface Header {
  id: number;
  flags: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(msg: Buffer): Header | null {
  if (msg.length < HEADER_SIZE) return null;
  return {
    id: msg.readUInt16BE(0),
    flags: msg.readUInt16BE(2),
    qdcount: msg.readUInt16BE(4),
    ancount: msg.readUInt16BE(6),
    nscount: msg.readUInt16BE(8),
    arcount: msg.readUInt16BE(10),
  };
}

export function opcodeOf(flags: number): number {
  return (flags >> 11) & 0xf;
}

export interface Question {
  /**
   * The name in lower case without the trailing dot ('' for the root) when
   * every label is letters, digits, '-' or '_'; otherwise null. Only such names
   * can be intercepted, so a label holding a '.' byte cannot pose as two labels.
   */
  hostname: string | null;
  qtype: number;
  qclass: number;
  /** Offset just past the question: its bytes are msg[HEADER_SIZE, end). */
  end: number;
}

/** Per octet: 0 when it cannot be in a plain label, else the octet in lower case. */
const HOSTNAME_OCTET = new Uint8Array(256);
for (const range of ['az', 'AZ', '09', '--', '__']) {
  for (let c = range.charCodeAt(0); c <= range.charCodeAt(1); c++) HOSTNAME_OCTET[c] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}
/** The name in text, built here and turned into a string once: one string per query, not one per label. */
const nameScratch = Buffer.alloc(MAX_NAME_OCTETS);

/**
 * Reads the question at `offset`. Compression pointers are refused: a
 * question's name is the first name in the message, so a pointer there can
 * only point into the header, which is what a hostile packet would do.
 */
export function readQuestion(msg: Buffer, offset = HEADER_SIZE): Question | null {
  let pos = offset;
  let octets = 1;
  let length = 0;
  let plain = true;
  for (;;) {
    if (pos >= msg.length) return null;
    const len = msg[pos]!;
    if (len === 0) break;
    if (len > 63) return null;
    octets += len + 1;
    if (octets > MAX_NAME_OCTETS || pos + 1 + len > msg.length) return null;
    if (plain) {
      if (length > 0) nameScratch[length++] = 0x2e;
      for (let i = pos + 1; i <= pos + len; i++) {
        const lower = HOSTNAME_OCTET[msg[i]!]!;
        if (lower === 0) {
          plain = false;
          break;
        }
        nameScratch[length++] = lower;
      }
    }
    pos += 1 + len;
  }
  pos += 1;
  if (pos + 4 > msg.length) return null;
  return {
    hostname: plain ? nameScratch.toString('latin1', 0, length) : null,
    qtype: msg.readUInt16BE(pos),
    qclass: msg.readUInt16BE(pos + 2),
    end: pos + 4,
  };
}

/**
 * Offset just past the possibly compressed name at `offset`, or -1 when it
 * runs off the end. A pointer ends a name, so no pointer is followed and
 * compression loops cannot make this spin.
 */
export function skipName(msg: Buffer, offset: number): number {
  let pos = offset;
  while (pos < msg.length) {
    const len = msg[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2 <= msg.length ? pos + 2 : -1;
    if (len > 63) return -1;
    pos += 1 + len;
  }
  return -1;
}

export const SECTION = { ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 2 } as const;

export interface RecordInfo {
  section: 0 | 1 | 2;
  type: number;
  ttl: number;
  ttlOffset: number;
  rdataOffset: number;
  rdlength: number;
}

/** Walks every record after the question; null when the counts and the bytes disagree. */
export function readRecords(msg: Buffer, header: Header, offset: number): RecordInfo[] | null {
  const records: RecordInfo[] = [];
  const counts = [header.ancount, header.nscount, header.arcount] as const;
  let pos = offset;
  for (let section = 0 as 0 | 1 | 2; section <= 2; section++) {
    for (let i = 0; i < counts[section]; i++) {
      const fixed = skipName(msg, pos);
      if (fixed < 0 || fixed + 10 > msg.length) return null;
      const rdlength = msg.readUInt16BE(fixed + 8);
      const rdataOffset = fixed + 10;
      if (rdataOffset + rdlength > msg.length) return null;
      records.push({
        section,
        type: msg.readUInt16BE(fixed),
        ttl: msg.readUInt32BE(fixed + 4),
        ttlOffset: fixed + 4,
        rdataOffset,
        rdlength,
      });
      pos = rdataOffset + rdlength;
    }
  }
  return records;
}

/** Where the records after the question hold the OPT record (RFC 6891). */
export const NO_OPT = -1;
export const BAD_RECORDS = -2;

/**
 * Offset of the OPT pseudo-record among the `count` records starting at
 * `offset`, NO_OPT when there is none, BAD_RECORDS when they run off the end.
 * Allocation-free because it runs for every query that carries EDNS.
 */
export function findOpt(msg: Buffer, offset: number, count: number): number {
  let pos = offset;
  let opt = NO_OPT;
  for (let i = 0; i < count; i++) {
    const fixed = skipName(msg, pos);
    if (fixed < 0 || fixed + 10 > msg.length) return BAD_RECORDS;
    if (opt === NO_OPT && fixed === pos + 1 && msg.readUInt16BE(fixed) === QTYPE.OPT) opt = pos;
    pos = fixed + 10 + msg.readUInt16BE(fixed + 8);
    if (pos > msg.length) return BAD_RECORDS;
  }
  return opt;
}

/** The OPT record's fields that matter here; `opt` is an offset from findOpt. */
export function optUdpSize(msg: Buffer, opt: number): number {
  return msg.readUInt16BE(opt + 3);
}
export function optVersion(msg: Buffer, opt: number): number {
  return msg[opt + 6]!;
}
export function optDnssecOk(msg: Buffer, opt: number): boolean {
  return (msg[opt + 7]! & 0x80) !== 0;
}

/**
 * Key for the question msg[HEADER_SIZE, end): its bytes with the name's ASCII
 * letters folded to lower case (DNS names compare case-insensitively, RFC 4343;
 * other bytes, the length octets and qtype/qclass stay as they are).
 */
export function questionKey(msg: Buffer, end: number): string {
  const bytes = Buffer.from(msg.subarray(HEADER_SIZE, end));
  for (let i = 0; i < bytes.length - 4; i++) {
    const c = bytes[i]!;
    if (c >= 0x41 && c <= 0x5a) bytes[i] = c | 0x20;
  }
  return bytes.toString('latin1');
}

/** True when a[aStart, aStart+len) and b[bStart, bStart+len) are the same question, ignoring ASCII case. */
export function sameQuestion(a: Buffer, aStart: number, b: Buffer, bStart: number, len: number): boolean {
  if (aStart + len > a.length || bStart + len > b.length) return false;
  for (let i = 0; i < len; i++) {
    let x = a[aStart + i]!;
    let y = b[bStart + i]!;
    if (x === y) continue;
    // qtype and qclass, the last four octets, compare exactly.
    if (i >= len - 4) return false;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}
