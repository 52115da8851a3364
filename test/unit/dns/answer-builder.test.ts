import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { AnswerBuilder } from '../../../src/dns/answer-builder.js';
import { findOpt, QTYPE, readQuestion } from '../../../src/dns/wire.js';
import { query } from './packets.js';

const builder = new AnswerBuilder(['127.0.0.10', '10.0.0.1', 'fd00::10'], 60);

function answer(msg: Buffer, options: { maxSize?: number } = {}): Packet {
  const question = readQuestion(msg)!;
  const withOpt = findOpt(msg, question.end, msg.readUInt16BE(10)) >= 0;
  const bytes = builder.build(msg, question.end, question.qtype, question.qclass, withOpt, options.maxSize ?? 512);
  const packet = Packet.parse(bytes);
  expect(packet.errors).toEqual([]);
  return packet;
}

describe('AnswerBuilder', () => {
  it('answers A from the IPv4 addresses, authoritatively, echoing ID, RD and the question as asked', () => {
    const packet = answer(query('Docker.Proxy', QTYPE.A, { id: 0xbeef }));
    expect(packet.header).toMatchObject({ id: 0xbeef, qr: 1, aa: 1, ra: 1, rd: 1, tc: 0, rcode: 0, qdcount: 1, ancount: 2 });
    expect(packet.questions).toEqual([expect.objectContaining({ name: 'Docker.Proxy', type: QTYPE.A, class: 1 })]);
    expect(packet.answers.map((r) => [r.name, r.type, r.ttl, r.address])).toEqual([
      ['Docker.Proxy', QTYPE.A, 60, '127.0.0.10'],
      ['Docker.Proxy', QTYPE.A, 60, '10.0.0.1'],
    ]);
    expect(answer(query('docker.proxy', QTYPE.A, { rd: false })).header.rd).toBe(0);
  });

  it('answers AAAA from the IPv6 addresses and ANY from all of them', () => {
    const aaaa = answer(query('docker.proxy', QTYPE.AAAA));
    expect(aaaa.answers.map((r) => [r.type, r.address])).toEqual([[QTYPE.AAAA, 'fd00::10']]);
    const any = answer(query('docker.proxy', QTYPE.ANY));
    expect(any.answers.map((r) => r.type)).toEqual([QTYPE.A, QTYPE.A, QTYPE.AAAA]);
  });

  it('answers NODATA for types it holds nothing for, and for other classes', () => {
    for (const type of [Packet.TYPE.MX, Packet.TYPE.TXT, 65]) {
      const packet = answer(query('docker.proxy', type));
      expect(packet.header).toMatchObject({ aa: 1, rcode: 0, ancount: 0 });
    }
    const v4only = new AnswerBuilder(['127.0.0.10'], 60);
    const msg = query('docker.proxy', QTYPE.AAAA);
    expect(Packet.parse(v4only.build(msg, msg.length, QTYPE.AAAA, 1, false, 512)).answers).toEqual([]);
    const chaos = query('docker.proxy', QTYPE.A);
    chaos.writeUInt16BE(3, chaos.length - 2);
    expect(Packet.parse(builder.build(chaos, chaos.length, QTYPE.A, 3, false, 512)).answers).toEqual([]);
  });

  it('echoes EDNS with an OPT record of its own', () => {
    const packet = answer(query('docker.proxy', QTYPE.A, { edns: { udpPayloadSize: 4096 } }));
    expect(packet.additionals).toEqual([expect.objectContaining({ type: Packet.TYPE.EDNS, class: 1232, version: 0 })]);
    expect(answer(query('docker.proxy', QTYPE.A)).additionals).toEqual([]);
  });

  it('sets TC and leaves the answers out when they would not fit', () => {
    const packet = answer(query('docker.proxy', QTYPE.A), { maxSize: 40 });
    expect(packet.header).toMatchObject({ tc: 1, ancount: 0 });
    expect(packet.questions).toHaveLength(1);
  });

  it('refuses with the question echoed, RA clear and OPT when the query had it', () => {
    const msg = query('Internal.Corp', QTYPE.A, { id: 0x77, edns: {} });
    const question = readQuestion(msg)!;
    const packet = Packet.parse(builder.refused(msg, question.end, true));
    expect(packet.header).toMatchObject({ id: 0x77, qr: 1, aa: 0, ra: 0, rd: 1, rcode: 5, qdcount: 1, ancount: 0, arcount: 1 });
    expect(packet.questions[0]?.name).toBe('Internal.Corp');
  });

  it('answers ANY for other names with one HINFO "RFC8482" record (RFC 8482 §4.2)', () => {
    const msg = query('other.test', QTYPE.ANY, { id: 0x78 });
    const question = readQuestion(msg)!;
    const bytes = builder.minimalAny(msg, question.end, false, 512);
    const packet = Packet.parse(bytes);
    expect(packet.header).toMatchObject({ id: 0x78, qr: 1, aa: 0, ra: 1, rcode: 0, ancount: 1 });
    expect(packet.answers[0]).toMatchObject({ name: 'other.test', type: QTYPE.HINFO, class: 1, ttl: 3600 });
    // CPU "RFC8482", OS "": two character-strings.
    expect(bytes.subarray(bytes.length - 9).toString('latin1')).toBe('\x07RFC8482\x00');
  });

  it('refuses an advertised address that is not an IP, and a bad TTL', () => {
    expect(() => new AnswerBuilder(['layover.local'], 60)).toThrow(/not an IP address: layover.local/);
    expect(() => new AnswerBuilder(['127.0.0.1'], -1)).toThrow(/answerTtl/);
  });
});
