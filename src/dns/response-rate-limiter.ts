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
  // Insertion order is age: eviction takes the first entry.
  readonly #accounts = new Map<string, Account>();

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

  /** What to send to `client` instead of `reply`: the reply itself, a truncated copy, or nothing. */
  admit(reply: Buffer, client: string): Buffer | null {
    if (this.#perSecond === 0 || reply.length < HEADER_SIZE) return reply;
    const questionEnd = questionEndOf(reply);
    const key = `${clientPrefix(client)}|${responseIdentity(reply, questionEnd)}`;
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
    return this.#slip > 0 && account.limited % this.#slip === 0 ? truncatedReply(reply, questionEnd) : null;
  }
}

/** Offset past the reply's question, or HEADER_SIZE when it has none (or none that can be read). */
function questionEndOf(reply: Buffer): number {
  if (reply.readUInt16BE(4) !== 1) return HEADER_SIZE;
  const end = skipName(reply, HEADER_SIZE) + 4;
  return end >= HEADER_SIZE + 5 && end <= reply.length ? end : HEADER_SIZE;
}

/**
 * What makes two responses "identical" for the limiter: answers by question
 * (name in lower case, so case randomisation does not open fresh buckets),
 * NXDOMAIN likewise, and every error (REFUSED, FORMERR, SERVFAIL...) to one
 * prefix as one, as BIND's errors-per-second does: a flood of junk
 * queries with distinct names still shares one bucket.
 */
function responseIdentity(reply: Buffer, questionEnd: number): string {
  const rcode = reply[3]! & 0xf;
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) return 'error';
  // latin1 keeps one character per octet; lower-casing folds the ASCII letters (and, harmlessly, a few others).
  return `${rcode}|${reply.toString('latin1', HEADER_SIZE, questionEnd).toLowerCase()}`;
}

/** The client's /24 (IPv4) or /56 (IPv6): what one site, or one spoofer's choice of victim, looks like. */
export function clientPrefix(address: string): string {
  const v4 = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!v4.includes(':')) return v4.slice(0, v4.lastIndexOf('.'));
  const groups = ipv6Groups(address.split('%')[0]!.toLowerCase());
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}:${(groups[3]! >> 8).toString(16)}/56`;
}

/** The eight 16-bit groups of an IPv6 address in text, '::' expanded and a trailing dotted quad as two groups. */
function ipv6Groups(text: string): number[] {
  const parts = (s: string | undefined): number[] =>
    !s
      ? []
      : s.split(':').flatMap((part) => {
          if (!part.includes('.')) return [parseInt(part, 16) || 0];
          const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head, tail] = text.split('::');
  const left = parts(head);
  const right = parts(tail);
  const zeros = Array<number>(Math.max(0, 8 - left.length - right.length)).fill(0);
  return [...left, ...zeros, ...right, 0, 0, 0, 0];
}
