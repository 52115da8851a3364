import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import {
  BAD_RECORDS, findOpt, NO_OPT, optDnssecOk, optUdpSize, optVersion, QTYPE, questionKey,
  readHeader, readQuestion, readRecords, sameQuestion, SECTION, skipName,
} from '../../../src/dns/wire.js';
import { query, reply, soa } from './packets.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

describe('readHeader', () => {
  it('reads the ID, flags and counts', () => {
    expect(readHeader(hex('abcd 0120 0001 0002 0003 0004'))).toEqual({
      id: 0xabcd, flags: 0x0120, qdcount: 1, ancount: 2, nscount: 3, arcount: 4,
    });
  });
  it('refuses fewer than 12 octets', () => {
    expect(readHeader(hex('abcd 0120 0001 0002 0003 00'))).toBeNull();
  });
});

describe('readQuestion', () => {
  it('lower-cases a hostname and reads type, class and the end offset', () => {
    const msg = query('Docker.PROXY', Packet.TYPE.AAAA);
    expect(readQuestion(msg)).toEqual({ hostname: 'docker.proxy', qtype: 28, qclass: 1, end: msg.length });
  });
  it('reads the root name as the empty string', () => {
    expect(readQuestion(hex('0000 0000 0001 0000 0000 0000 00 0002 0001'))?.hostname).toBe('');
  });
  it('gives no hostname for a label holding a dot or other bytes, but still reads the question', () => {
    // One label "a.b" must not pass for the two labels a and b.
    const dotted = hex('0000 0000 0001 0000 0000 0000 03 612e62 00 0001 0001');
    expect(readQuestion(dotted)).toEqual({ hostname: null, qtype: 1, qclass: 1, end: dotted.length });
    expect(readQuestion(hex('0000 0000 0001 0000 0000 0000 02 61ff 00 0001 0001'))?.hostname).toBeNull();
  });
  it.each([
    ['a compression pointer', '0000 0000 0001 0000 0000 0000 c00c 0001 0001'],
    ['a reserved label type', '0000 0000 0001 0000 0000 0000 41 61 00 0001 0001'],
    ['a label running off the end', '0000 0000 0001 0000 0000 0000 05 6161'],
    ['no terminating zero', '0000 0000 0001 0000 0000 0000 01 61'],
    ['a cut-off type and class', '0000 0000 0001 0000 0000 0000 01 61 00 0001 00'],
  ])('refuses %s', (_, bytes) => {
    expect(readQuestion(hex(bytes))).toBeNull();
  });
  it('refuses names over 255 octets and accepts 255', () => {
    const labels = (n: number) => Buffer.concat(Array.from({ length: n }, () => Buffer.from('\x3f' + 'a'.repeat(63), 'latin1')));
    const header = hex('0000 0000 0001 0000 0000 0000');
    // 3 × 64 + 1 + 61 + 1 = 255 octets.
    const ok = Buffer.concat([header, labels(3), Buffer.from('\x3d' + 'b'.repeat(61) + '\x00', 'latin1'), hex('0001 0001')]);
    expect(readQuestion(ok)?.end).toBe(ok.length);
    const long = Buffer.concat([header, labels(3), Buffer.from('\x3e' + 'b'.repeat(62) + '\x00', 'latin1'), hex('0001 0001')]);
    expect(readQuestion(long)).toBeNull();
  });
});

describe('skipName', () => {
  it('stops after a pointer without following it, so loops cannot spin', () => {
    expect(skipName(hex('c00c'), 0)).toBe(2);
    expect(skipName(hex('01 61 c000'), 0)).toBe(4);
    expect(skipName(hex('01 61 c0'), 0)).toBe(-1);
    expect(skipName(hex('01 61'), 0)).toBe(-1);
  });
});

describe('readRecords', () => {
  it('finds the TTL of every record in every section', () => {
    const msg = reply('other.test', QTYPE.A, {
      answers: [{ type: QTYPE.A, address: '192.0.2.7', ttl: 100 }, { type: QTYPE.A, address: '192.0.2.8', ttl: 50 }],
      authorities: [soa(900, 60)],
      additionals: [Packet.Resource.EDNS([], {})],
    });
    const header = readHeader(msg)!;
    const records = readRecords(msg, header, readQuestion(msg)!.end)!;
    expect(records.map((r) => [r.section, r.type, r.ttl])).toEqual([
      [SECTION.ANSWER, QTYPE.A, 100], [SECTION.ANSWER, QTYPE.A, 50], [SECTION.AUTHORITY, QTYPE.SOA, 900], [SECTION.ADDITIONAL, QTYPE.OPT, 0],
    ]);
    for (const record of records) expect(msg.readUInt32BE(record.ttlOffset)).toBe(record.ttl);
    expect(msg.toString('hex', records[0]!.rdataOffset, records[0]!.rdataOffset + 4)).toBe('c0000207');
  });
  it('returns null when the counts promise more than the bytes hold', () => {
    const msg = reply('other.test', QTYPE.A, { answers: [{ type: QTYPE.A, address: '192.0.2.7' }] });
    msg.writeUInt16BE(2, 6);
    expect(readRecords(msg, readHeader(msg)!, readQuestion(msg)!.end)).toBeNull();
    expect(readRecords(msg.subarray(0, msg.length - 1), readHeader(msg)!, readQuestion(msg)!.end)).toBeNull();
  });
});

describe('findOpt', () => {
  it('finds the OPT record and reads its size, version and DO bit', () => {
    const msg = query('a.test', QTYPE.A, { edns: { udpPayloadSize: 1400, doFlag: true } });
    const opt = findOpt(msg, readQuestion(msg)!.end, 1);
    expect(opt).toBeGreaterThan(0);
    expect([optUdpSize(msg, opt), optVersion(msg, opt), optDnssecOk(msg, opt)]).toEqual([1400, 0, true]);
  });
  it('tells a query without OPT from one whose records are broken', () => {
    const plain = query('a.test', QTYPE.A);
    expect(findOpt(plain, readQuestion(plain)!.end, 0)).toBe(NO_OPT);
    expect(findOpt(plain, readQuestion(plain)!.end, 1)).toBe(BAD_RECORDS);
    const cut = query('a.test', QTYPE.A, { edns: {} });
    expect(findOpt(cut.subarray(0, cut.length - 3), readQuestion(cut)!.end, 1)).toBe(BAD_RECORDS);
  });
});

describe('questionKey and sameQuestion', () => {
  it('fold the case of the name only', () => {
    const lower = query('other.test', QTYPE.A);
    const upper = query('OTHER.Test', QTYPE.A);
    expect(questionKey(upper, upper.length)).toBe(questionKey(lower, lower.length));
    expect(sameQuestion(upper, 12, lower, 12, lower.length - 12)).toBe(true);
    // qtype 0x0041 (HTTPS) and 0x0061 differ although 'A' and 'a' fold together.
    const https = query('other.test', 0x41);
    const other = query('other.test', 0x61);
    expect(questionKey(https, https.length)).not.toBe(questionKey(other, other.length));
    expect(sameQuestion(https, 12, other, 12, other.length - 12)).toBe(false);
    expect(sameQuestion(lower, 12, query('other.tesu', QTYPE.A), 12, lower.length - 12)).toBe(false);
  });
  it('sameQuestion refuses to read past either buffer', () => {
    const msg = query('other.test', QTYPE.A);
    expect(sameQuestion(msg, 12, msg.subarray(0, msg.length - 1), 12, msg.length - 12)).toBe(false);
  });
});
