import { isIPv4, isIPv6 } from 'node:net';
import { Packet } from 'dns2';
import { FLAG, HEADER_SIZE, OUR_UDP_PAYLOAD_SIZE, QCLASS, QTYPE, RCODE } from './wire.js';

/**
 * Builds the responses for intercepted names. Nodes send all their DNS here,
 * so this is the hot path: dns2 encodes the answer records once, at start, and
 * each response is the query's ID and question copied around those bytes.
 * The records' owner names are compression pointers to offset 12, where every
 * response carries the question, so one template fits every name. The other
 * fixed responses (REFUSED, the minimal answer to ANY) are built the same way,
 * so a flood of them costs no dns2 encode either.
 */
export class AnswerBuilder {
  /** Answer-section bytes and their record count, by qtype. */
  readonly #templates = new Map<number, { bytes: Buffer; count: number }>();
  /** Layover's own OPT record (its payload size, no options), for any answer to a query that had one. */
  readonly opt: Buffer;

  constructor(advertise: readonly string[], ttl: number) {
    const v4 = advertise.filter((address) => isIPv4(address));
    const v6 = advertise.filter((address) => isIPv6(address));
    const unusable = advertise.filter((address) => !isIPv4(address) && !isIPv6(address));
    if (unusable.length > 0) throw new Error(`dns advertise: not an IP address: ${unusable.join(', ')}`);
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) throw new Error(`dns answerTtl: expected seconds, got ${ttl}`);
    this.#templates.set(QTYPE.A, encodeAnswers(v4.map((address) => ({ type: QTYPE.A, address })), ttl));
    this.#templates.set(QTYPE.AAAA, encodeAnswers(v6.map((address) => ({ type: QTYPE.AAAA, address })), ttl));
    // RFC 8482 lets ANY be answered with a subset; all our addresses is the useful one.
    this.#templates.set(
      QTYPE.ANY,
      encodeAnswers([...v4.map((address) => ({ type: QTYPE.A, address })), ...v6.map((address) => ({ type: QTYPE.AAAA, address }))], ttl),
    );
    this.opt = encodeOpt();
  }

  /**
   * The authoritative response to `query`, whose question ends at `questionEnd`.
   * A qtype or qclass we hold nothing for gets NODATA: never forwarded, so the
   * real address of an intercepted name cannot leak. `withOpt` echoes EDNS;
   * a response that would exceed `maxSize` goes out empty with TC=1 (RFC 2181 §9).
   */
  build(query: Buffer, questionEnd: number, qtype: number, qclass: number, withOpt: boolean, maxSize: number): Buffer {
    const inClass = qclass === QCLASS.IN || qclass === QCLASS.ANY;
    const answers = (inClass ? this.#templates.get(qtype) : undefined) ?? EMPTY;
    return this.#respond(query, questionEnd, answers, FLAG.AA | FLAG.RA, RCODE.NOERROR, withOpt, maxSize);
  }

  /**
   * RFC 8482's minimal answer to ANY for a name we would otherwise forward: one
   * synthesised HINFO record instead of everything the upstream holds, which is
   * what made ANY the amplifier of choice.
   */
  minimalAny(query: Buffer, questionEnd: number, withOpt: boolean, maxSize: number): Buffer {
    return this.#respond(query, questionEnd, RFC8482_HINFO, FLAG.RA, RCODE.NOERROR, withOpt, maxSize);
  }

  /** REFUSED with the question echoed and RA clear: recursion is not available to this client (BIND's allow-recursion). */
  refused(query: Buffer, questionEnd: number, withOpt: boolean): Buffer {
    return this.#respond(query, questionEnd, EMPTY, 0, RCODE.REFUSED, withOpt, Infinity);
  }

  #respond(
    query: Buffer,
    questionEnd: number,
    records: { bytes: Buffer; count: number },
    flags: number,
    rcode: number,
    withOpt: boolean,
    maxSize: number,
  ): Buffer {
    let answers = records;
    const optLength = withOpt ? this.opt.length : 0;
    let truncated = false;
    if (questionEnd + answers.bytes.length + optLength > maxSize) {
      answers = EMPTY;
      truncated = true;
    }
    const out = Buffer.allocUnsafe(questionEnd + answers.bytes.length + optLength);
    query.copy(out, 0, 0, 2);
    const asked = query.readUInt16BE(2);
    out.writeUInt16BE(FLAG.QR | flags | (asked & (FLAG.RD | FLAG.CD)) | (truncated ? FLAG.TC : 0) | rcode, 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt16BE(answers.count, 6);
    out.writeUInt16BE(0, 8);
    out.writeUInt16BE(withOpt ? 1 : 0, 10);
    query.copy(out, HEADER_SIZE, HEADER_SIZE, questionEnd);
    answers.bytes.copy(out, questionEnd);
    if (withOpt) this.opt.copy(out, questionEnd + answers.bytes.length);
    return out;
  }
}

const EMPTY = { bytes: Buffer.alloc(0), count: 0 };

/** RFC 8482 §4.2: HINFO with CPU "RFC8482" and an empty OS; the owner points at the question. dns2 has no HINFO encoder. */
const RFC8482_TTL = 3600;
const RFC8482_HINFO = (() => {
  const cpu = Buffer.from('RFC8482', 'latin1');
  const rdata = Buffer.concat([Buffer.from([cpu.length]), cpu, Buffer.from([0])]);
  const fixed = Buffer.alloc(12);
  fixed.writeUInt16BE(0xc000 + HEADER_SIZE, 0);
  fixed.writeUInt16BE(QTYPE.HINFO, 2);
  fixed.writeUInt16BE(QCLASS.IN, 4);
  fixed.writeUInt32BE(RFC8482_TTL, 6);
  fixed.writeUInt16BE(rdata.length, 10);
  return { bytes: Buffer.concat([fixed, rdata]), count: 1 };
})();

/** The question 'x' IN A, as dns2 encodes it: 1 + 1 + 1 name octets, 4 for type and class. */
const PLACEHOLDER = 'x';
const PLACEHOLDER_QUESTION_END = HEADER_SIZE + 3 + 4;

function encodeAnswers(records: { type: number; address: string }[], ttl: number): { bytes: Buffer; count: number } {
  const packet = new Packet();
  packet.questions.push(new Packet.Question(PLACEHOLDER, QTYPE.A, QCLASS.IN));
  for (const record of records) {
    packet.answers.push(new Packet.Resource({ name: PLACEHOLDER, type: record.type, class: QCLASS.IN, ttl, address: record.address }));
  }
  const wire = packet.toBuffer();
  const bytes = Buffer.from(wire.subarray(PLACEHOLDER_QUESTION_END));
  // The template is only valid if dns2 compressed every owner name to the question.
  let pos = 0;
  for (let i = 0; i < records.length; i++) {
    if (bytes.readUInt16BE(pos) !== 0xc000 + HEADER_SIZE) throw new Error('dns2 did not compress the answer name');
    pos += 12 + bytes.readUInt16BE(pos + 10);
  }
  if (pos !== bytes.length) throw new Error('unexpected answer template length');
  return { bytes, count: records.length };
}

function encodeOpt(): Buffer {
  const packet = new Packet();
  packet.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: OUR_UDP_PAYLOAD_SIZE }));
  return Buffer.from(packet.toBuffer().subarray(HEADER_SIZE));
}
