import { FLAG, HEADER_SIZE } from './wire.js';

/** The UDP payload Layover advertises upstream: DNS Flag Day 2020's, which avoids fragmented replies. */
const UPSTREAM_UDP_PAYLOAD = 1232;
const OPT_RECORD_BYTES = 11;
const TYPE_OPT = 41;
const DO_BIT = 0x8000;

/**
 * The query Layover sends upstream for a client's: its question, recursion desired, and no more of the
 * client's than the answer cache's key holds (EDNS or not, its DO bit, the CD bit). A client's own
 * bytes carried its RD bit, EDNS options (client subnet, a cookie) and extra records to the upstream,
 * whose reply, shaped by them and echoing them, was then cached and shared with every other client.
 * The ID is left for the forwarder to set.
 */
export function upstreamQuery(msg: Buffer, questionEnd: number, edns: boolean, dnssecOk: boolean): Buffer {
  const query = Buffer.alloc(questionEnd + (edns ? OPT_RECORD_BYTES : 0));
  query.writeUInt16BE(FLAG.RD | (msg.readUInt16BE(2) & FLAG.CD), 2);
  query.writeUInt16BE(1, 4); // QDCOUNT
  query.writeUInt16BE(edns ? 1 : 0, 10); // ARCOUNT
  msg.copy(query, HEADER_SIZE, HEADER_SIZE, questionEnd);
  if (edns) {
    // The root name (a zero byte, left by alloc), TYPE OPT, the payload size as its class, then
    // extended RCODE 0, version 0 and the DO flag as its TTL, and no options.
    const at = questionEnd + 1;
    query.writeUInt16BE(TYPE_OPT, at);
    query.writeUInt16BE(UPSTREAM_UDP_PAYLOAD, at + 2);
    query.writeUInt32BE(dnssecOk ? DO_BIT : 0, at + 4);
    query.writeUInt16BE(0, at + 8);
  }
  return query;
}
