import { randomInt } from 'node:crypto';
import { clientPrefix } from '../net/client-prefix.js';
import { truncatedReply } from './fit-reply.js';
import { HEADER_SIZE, RCODE, skipName } from './wire.js';

export interface RateLimitOptions {
  /** Identical responses per second to one client prefix; 0 switches the limiter off. */
  perSecond: number;
  /** Every slip-th limited response goes out truncated; 0: all limited responses are dropped. */
  slip: number;
  /** Bound on the accounts kept; the oldest is forgotten first. */
  maxEntries?: number;
  /** Milliseconds on a monotonic clock; tests pass their own. */
  now?: () => number;
}

interface Account {
  tokens: number;
  at: number;
  limited: number;
}

/** BIND's max-table-size default: enough for many real clients, small enough for a flood of spoofed ones. */
const DEFAULT_MAX_ENTRIES = 20_000;

/**
 * Response-rate limiting for UDP, after BIND's RRL: a token bucket per client
 * prefix (/24, /56) and response identity, refilled at `perSecond` with a
 * burst of one second. Over the limit, every slip-th response goes out empty
 * with TC=1, so a real client behind a flood retries over TCP (which a forged
 * source cannot complete), and the rest are dropped: a forged source turns
 * into a trickle of packets no bigger than the queries. The accounts are a
 * bounded table, so a flood of distinct spoofed prefixes cannot grow memory.
 */
export class ResponseRateLimiter {
  readonly #perSecond: number;
  readonly #slip: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  // Keyed by a hash of prefix and identity: this runs for every UDP response,
  // intercepted names included, and building a string key per packet cost
  // more than the rest of the hot path. Insertion order is age: eviction takes
  // the first entry.
  readonly #accounts = new Map<number, Account>();
  /** Per process, so that nobody can work out offline which keys collide. */
  readonly #seed = randomInt(0x7fffffff);

  constructor(options: RateLimitOptions) {
    const { perSecond, slip } = options;
    if (!Number.isInteger(perSecond) || perSecond < 0) throw new Error(`dns rate limit: expected responses per second, got ${perSecond}`);
    if (!Number.isInteger(slip) || slip < 0) throw new Error(`dns rate limit slip: expected a count, got ${slip}`);
    this.#perSecond = perSecond;
    this.#slip = slip;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = options.now ?? (() => performance.now());
  }

  get size(): number {
    return this.#accounts.size;
  }

  /**
   * What to send to `client` instead of `reply`: the reply itself, a truncated copy, or nothing.
   * `wildcard` (`*.suffix`): the reply answers a name under that intercepted wildcard, and is counted
   * under it rather than under its own name. `opt`: the query had an OPT record, and a truncated slip
   * carries this one (RFC 6891).
   */
  admit(reply: Buffer, client: string, wildcard?: string, opt?: Buffer): Buffer | null {
    if (this.#perSecond === 0 || reply.length < HEADER_SIZE) return reply;
    const questionEnd = questionEndOf(reply);
    const key = accountKey(this.#seed, client, reply, questionEnd, wildcard);
    const now = this.#now();
    let account = this.#accounts.get(key);
    if (!account) {
      if (this.#accounts.size >= this.#maxEntries) this.#accounts.delete(this.#accounts.keys().next().value!);
      account = { tokens: this.#perSecond, at: now, limited: 0 };
      this.#accounts.set(key, account);
    } else {
      account.tokens = Math.min(this.#perSecond, account.tokens + ((now - account.at) * this.#perSecond) / 1000);
      account.at = now;
    }
    if (account.tokens >= 1) {
      account.tokens -= 1;
      return reply;
    }
    account.limited++;
    return this.#slip > 0 && account.limited % this.#slip === 0 ? truncatedReply(reply, questionEnd, opt) : null;
  }
}

/** Offset past the reply's question, or HEADER_SIZE when it has none (or none that can be read). */
function questionEndOf(reply: Buffer): number {
  if (reply.readUInt16BE(4) !== 1) return HEADER_SIZE;
  const end = skipName(reply, HEADER_SIZE) + 4;
  return end >= HEADER_SIZE + 5 && end <= reply.length ? end : HEADER_SIZE;
}

/**
 * A 53-bit hash (two 32-bit FNV-style lanes) of the client's prefix and the
 * response's identity. The identity: answers by question, with the name's
 * ASCII letters folded (so case randomisation opens no fresh buckets),
 * NXDOMAIN likewise, and every error (REFUSED, FORMERR, SERVFAIL...) to one
 * prefix as one, as BIND's errors-per-second does: a flood of junk queries
 * with distinct names still shares one bucket; answers of names under an
 * intercepted wildcard by the wildcard, as BIND counts a wildcard's synthesized
 * answers. A collision merely makes two identities share a budget.
 */
function accountKey(seed: number, client: string, reply: Buffer, questionEnd: number, wildcard: string | undefined): number {
  let a = seed ^ 0x811c9dc5;
  let b = seed ^ 0x9e3779b9;
  // IPv4 (also mapped into IPv6): the text up to the last dot, read in place.
  let prefix = client;
  let start = 0;
  let end = client.lastIndexOf('.');
  if (client.includes(':')) {
    if (client.startsWith('::ffff:') && end > 0) start = 7;
    else end = (prefix = clientPrefix(client)).length;
  }
  for (let i = start; i < end; i++) {
    const c = prefix.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  const rcode = reply[3]! & 0xf;
  const error = rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN;
  a = Math.imul(a ^ (error ? 0x100 : rcode), 0x01000193);
  b = Math.imul(b ^ (error ? 0x100 : rcode), 0x5bd1e995);
  if (wildcard !== undefined && !error) {
    // The wildcard and the question's type and class, for the name.
    for (let i = 0; i < wildcard.length; i++) {
      const c = wildcard.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
  }
  for (let i = error ? questionEnd : wildcard !== undefined ? questionEnd - 4 : HEADER_SIZE; i < questionEnd; i++) {
    let c = reply[i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 0x200000 + (b >>> 11);
}
