import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { AnswerBuilder } from '../../../src/dns/answer-builder.js';
import { fitReply } from '../../../src/dns/fit-reply.js';
import { QTYPE } from '../../../src/dns/wire.js';
import { query, reply } from './packets.js';

const upstream = reply('other.test', QTYPE.A, { id: 7, answers: [{ type: QTYPE.A, address: '192.0.2.7' }] });

describe('fitReply', () => {
  it('gives the reply the client ID, spelling of the question and RD bit', () => {
    const asked = query('OTHER.test', QTYPE.A, { id: 0x4242, rd: false });
    const packet = Packet.parse(fitReply(Buffer.from(upstream), asked, asked.length, 512));
    expect(packet.header).toMatchObject({ id: 0x4242, rd: 0, qr: 1, tc: 0 });
    expect(packet.questions[0]?.name).toBe('OTHER.test');
    expect(packet.answers[0]?.address).toBe('192.0.2.7');
  });
  it('cuts a reply that does not fit to header and question with TC=1', () => {
    const asked = query('other.test', QTYPE.A, { id: 9 });
    const packet = Packet.parse(fitReply(Buffer.from(upstream), asked, asked.length, asked.length + 5));
    expect(packet.header).toMatchObject({ id: 9, tc: 1, qdcount: 1, ancount: 0, nscount: 0, arcount: 0 });
    expect(packet.errors).toEqual([]);
  });
  it('keeps an OPT record in the cut reply to a query that had one (RFC 6891 §7)', () => {
    const asked = query('other.test', QTYPE.A, { id: 11 });
    const opt = new AnswerBuilder(['127.0.0.10'], 60).opt;
    const packet = Packet.parse(fitReply(Buffer.from(upstream), asked, asked.length, asked.length + 5, opt));
    expect(packet.header).toMatchObject({ id: 11, tc: 1, qdcount: 1, ancount: 0, arcount: 1 });
    expect(packet.errors).toEqual([]);
    expect(packet.additionals[0]).toMatchObject({ type: 41 });
  });
});
