import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { errorResponse } from '../../../src/dns/error-response.js';
import { QTYPE, RCODE } from '../../../src/dns/wire.js';
import { query } from './packets.js';

describe('errorResponse', () => {
  it('is a bare header echoing ID, opcode and RD without a parsed request', () => {
    const msg = Buffer.from('abcd 2900 0003 0000 0000 0000 ffff'.replace(/ /g, ''), 'hex');
    const bytes = errorResponse(msg, RCODE.FORMERR);
    expect(bytes).toHaveLength(12);
    expect(Packet.parse(bytes).header).toMatchObject({ id: 0xabcd, qr: 1, opcode: 5, rd: 1, ra: 1, rcode: RCODE.FORMERR, qdcount: 0 });
  });
  it('echoes the question, and OPT for an EDNS client, given the parsed request', () => {
    const msg = query('other.test', QTYPE.AAAA, { id: 77, edns: {} });
    const packet = Packet.parse(errorResponse(msg, RCODE.SERVFAIL, Packet.parse(msg)));
    expect(packet.header).toMatchObject({ id: 77, qr: 1, ra: 1, rcode: RCODE.SERVFAIL });
    expect(packet.questions[0]).toMatchObject({ name: 'other.test', type: QTYPE.AAAA });
    expect(packet.additionals[0]?.type).toBe(Packet.TYPE.EDNS);
  });
  it('carries BADVERS, an extended RCODE, in the OPT record', () => {
    const msg = query('other.test', QTYPE.A, { edns: { version: 1 } });
    const packet = Packet.parse(errorResponse(msg, RCODE.BADVERS, Packet.parse(msg)));
    expect(packet.header.rcode).toBe(RCODE.BADVERS);
  });
});
