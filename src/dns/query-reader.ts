import type { Transport } from './forwarder.js';
import {
  BAD_RECORDS, FLAG, findOpt, HEADER_SIZE, NO_OPT, opcodeOf, optUdpSize, optVersion, OUR_UDP_PAYLOAD_SIZE, type Question, readQuestion,
} from './wire.js';

/** Queries are small; anything bigger is hostile or broken (FORMERR over UDP, disconnect over TCP). */
export const MAX_QUERY_BYTES = 4096;
/** RFC 1035 §4.2.1: without EDNS a UDP response is at most 512 octets. */
const CLASSIC_UDP_SIZE = 512;
const TCP_MAX_SIZE = 0xffff;

/** Why a packet is no query to answer: what the server does instead. */
export const REJECT = {
  /** Shorter than a header: silence, counted as failed. */
  TOO_SHORT: 0,
  /** A response: never answered (two servers would bounce errors off each other) and not counted. */
  RESPONSE: 1,
  FORMERR: 2,
  NOTIMP: 3,
  BADVERS: 4,
} as const;
export type Rejection = (typeof REJECT)[keyof typeof REJECT];

export interface Query {
  question: Question;
  /** Offset of the OPT record, or NO_OPT. */
  opt: number;
  /** The largest response sent over this transport: what the client takes, over UDP at most OUR_UDP_PAYLOAD_SIZE. */
  maxSize: number;
}

/**
 * The checks every packet passes before its question is looked at, shared by
 * the main thread and the UDP answer workers so that both treat a packet the
 * same: the header, one readable question, the framing of any records and
 * the EDNS version.
 */
export function readQuery(msg: Buffer, transport: Transport): Query | Rejection {
  if (msg.length < HEADER_SIZE) return REJECT.TOO_SHORT;
  const flags = msg.readUInt16BE(2);
  if ((flags & FLAG.QR) !== 0) return REJECT.RESPONSE;
  if (msg.length > MAX_QUERY_BYTES) return REJECT.FORMERR;
  if (opcodeOf(flags) !== 0) return REJECT.NOTIMP;
  if (msg.readUInt16BE(4) !== 1) return REJECT.FORMERR;
  const question = readQuestion(msg);
  if (!question) return REJECT.FORMERR;
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  const opt = records === 0 ? NO_OPT : findOpt(msg, question.end, records);
  if (opt === BAD_RECORDS) return REJECT.FORMERR;
  if (opt !== NO_OPT && optVersion(msg, opt) !== 0) return REJECT.BADVERS;
  const maxSize = transport === 'tcp' ? TCP_MAX_SIZE : opt === NO_OPT ? CLASSIC_UDP_SIZE : Math.min(OUR_UDP_PAYLOAD_SIZE, Math.max(CLASSIC_UDP_SIZE, optUdpSize(msg, opt)));
  return { question, opt, maxSize };
}
