import { Packet } from 'dns2';
import { HEADER_SIZE, opcodeOf } from './wire.js';

/**
 * An error response (FORMERR, SERVFAIL, NOTIMP, BADVERS) to `query`. These are
 * rare, so dns2 encodes them: given the parsed request it echoes the question
 * and adds the OPT record an EDNS client expects (and that an RCODE above 15
 * needs to be carried at all). Without one, as for a query that could not be
 * decoded, the response is a bare header that echoes the ID (RFC 1035 §4.1.1).
 * `query` must be at least HEADER_SIZE octets.
 */
export function errorResponse(query: Buffer, rcode: number, parsed?: Packet): Buffer {
  if (parsed) {
    try {
      const response = Packet.createErrorResponseFromRequest(parsed, rcode);
      response.header.ra = 1;
      return response.toBuffer();
    } catch {
      // A request dns2 decoded but cannot re-encode (odd bytes in a name) still
      // deserves an answer: fall through to the bare header.
    }
  }
  if (query.length < HEADER_SIZE) throw new RangeError('a DNS query has at least a 12-octet header');
  const header = new Packet.Header({
    id: query.readUInt16BE(0),
    qr: 1,
    opcode: opcodeOf(query.readUInt16BE(2)),
    rd: (query[2]! & 1) as 0 | 1,
    ra: 1,
    rcode: rcode & 0xf,
  });
  return new Packet(header).toBuffer();
}
