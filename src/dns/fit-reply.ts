import { FLAG, HEADER_SIZE } from './wire.js';

/**
 * Turns a forwarded or cached reply into the answer to `query`, whose question
 * (msg[12, questionEnd)) the reply's equals but for ASCII case. `reply` is
 * owned by the caller and changed in place. The reply gets the client's ID,
 * the client's own spelling of the question (resolvers that randomise case,
 * the "0x20" defence, check it) and its RD bit. A reply bigger than `maxSize`
 * (one cached from TCP or for a client with a larger EDNS buffer) shrinks to
 * header and question with TC=1, and the client retries over TCP (RFC 2181 §9);
 * `opt`, for a query that had one, then goes with it (RFC 6891 §7).
 */
export function fitReply(reply: Buffer, query: Buffer, questionEnd: number, maxSize: number, opt?: Buffer): Buffer {
  query.copy(reply, 0, 0, 2);
  query.copy(reply, HEADER_SIZE, HEADER_SIZE, questionEnd);
  const flags = (reply.readUInt16BE(2) & ~FLAG.RD) | (query.readUInt16BE(2) & FLAG.RD);
  reply.writeUInt16BE(flags, 2);
  return reply.length <= maxSize ? reply : truncatedReply(reply, questionEnd, opt);
}

/**
 * A copy of `reply` cut to its header and the bytes before `questionEnd` (the
 * question, or nothing when questionEnd is HEADER_SIZE), with TC=1 and no
 * records but `opt` if given: what tells a client to ask again over TCP.
 */
export function truncatedReply(reply: Buffer, questionEnd: number, opt?: Buffer): Buffer {
  const truncated = Buffer.alloc(questionEnd + (opt ? opt.length : 0));
  reply.copy(truncated, 0, 0, questionEnd);
  truncated.writeUInt16BE(truncated.readUInt16BE(2) | FLAG.TC, 2);
  if (questionEnd === HEADER_SIZE) truncated.writeUInt16BE(0, 4);
  truncated.writeUInt16BE(0, 6);
  truncated.writeUInt16BE(0, 8);
  truncated.writeUInt16BE(opt ? 1 : 0, 10);
  opt?.copy(truncated, questionEnd);
  return truncated;
}
