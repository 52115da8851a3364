import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { clientPrefix } from '../../../src/net/client-prefix.js';
import { ResponseRateLimiter } from '../../../src/dns/response-rate-limiter.js';
import { QTYPE, RCODE } from '../../../src/dns/wire.js';
import { reply } from './packets.js';

const answer = (name = 'docker.proxy', rcode: number = RCODE.NOERROR) =>
  reply(name, QTYPE.A, { rcode, answers: rcode === RCODE.NOERROR ? [{ type: QTYPE.A, address: '127.0.0.10' }] : [] });

function limiter(perSecond: number, slip: number, maxEntries?: number) {
  let now = 0;
  const rrl = new ResponseRateLimiter({ perSecond, slip, maxEntries, now: () => now });
  return { rrl, advance: (ms: number) => (now += ms) };
}

/** 'send', 'slip' or 'drop' for each of `count` admissions of `bytes` to `client`. */
function outcomes(rrl: ResponseRateLimiter, bytes: Buffer, client: string, count: number): string[] {
  return Array.from({ length: count }, () => {
    const out = rrl.admit(bytes, client);
    return out === null ? 'drop' : out === bytes ? 'send' : 'slip';
  });
}

describe('ResponseRateLimiter', () => {
  it('sends a burst of one second, then slips every slip-th response and drops the rest', () => {
    const { rrl } = limiter(3, 2);
    expect(outcomes(rrl, answer(), '192.0.2.1', 8)).toEqual(['send', 'send', 'send', 'drop', 'slip', 'drop', 'slip', 'drop']);
  });

  it('slips an empty, truncated copy that keeps the question', () => {
    const { rrl } = limiter(1, 1);
    const bytes = answer('Docker.Proxy');
    rrl.admit(bytes, '192.0.2.1');
    const slipped = Packet.parse(rrl.admit(bytes, '192.0.2.1')!);
    expect(slipped.header).toMatchObject({ qr: 1, tc: 1, qdcount: 1, ancount: 0, nscount: 0, arcount: 0 });
    expect(slipped.questions[0]?.name).toBe('Docker.Proxy');
  });

  it('refills at the configured rate', () => {
    const { rrl, advance } = limiter(10, 0);
    expect(outcomes(rrl, answer(), '192.0.2.1', 11).at(-1)).toBe('drop');
    advance(100);
    expect(outcomes(rrl, answer(), '192.0.2.1', 2)).toEqual(['send', 'drop']);
    advance(10_000);
    expect(outcomes(rrl, answer(), '192.0.2.1', 11).filter((o) => o === 'send')).toHaveLength(10);
  });

  it('shares an account within a /24 or /56, whatever the case of the name, and not beyond', () => {
    const { rrl } = limiter(1, 0);
    expect(outcomes(rrl, answer('docker.proxy'), '192.0.2.1', 1)).toEqual(['send']);
    expect(outcomes(rrl, answer('DOCKER.proxy'), '192.0.2.200', 1)).toEqual(['drop']);
    expect(outcomes(rrl, answer('docker.proxy'), '::ffff:192.0.2.9', 1)).toEqual(['drop']);
    expect(outcomes(rrl, answer('docker.proxy'), '192.0.3.1', 1)).toEqual(['send']);
    expect(outcomes(rrl, answer('other.test'), '192.0.2.1', 1)).toEqual(['send']);
    expect(outcomes(rrl, answer(), '2001:db8:1:200::1', 1)).toEqual(['send']);
    expect(outcomes(rrl, answer(), '2001:db8:1:2ff:ffff::9', 1)).toEqual(['drop']);
    expect(outcomes(rrl, answer(), '2001:db8:1:300::1', 1)).toEqual(['send']);
  });

  it('counts every error response to a prefix as one, whatever the name', () => {
    const { rrl } = limiter(2, 0);
    const names = ['a.test', 'b.test', 'c.test', 'd.test'];
    expect(names.map((name) => outcomes(rrl, answer(name, RCODE.REFUSED), '192.0.2.1', 1)[0])).toEqual(['send', 'send', 'drop', 'drop']);
    expect(outcomes(rrl, answer('a.test'), '192.0.2.1', 1)).toEqual(['send']);
  });

  it('keeps a bounded table under a flood of distinct spoofed prefixes', () => {
    const { rrl } = limiter(5, 2, 100);
    for (let i = 0; i < 10_000; i++) rrl.admit(answer(), `10.${(i >> 8) & 0xff}.${i & 0xff}.1`);
    expect(rrl.size).toBe(100);
  });

  it('is off at 0', () => {
    const { rrl } = limiter(0, 2);
    expect(outcomes(rrl, answer(), '192.0.2.1', 1000).every((o) => o === 'send')).toBe(true);
    expect(rrl.size).toBe(0);
  });
});

describe('clientPrefix', () => {
  it('is the /24 of an IPv4 address, also when mapped into IPv6, and the /56 of an IPv6 one', () => {
    expect(clientPrefix('192.0.2.77')).toBe('192.0.2');
    expect(clientPrefix('::ffff:192.0.2.77')).toBe('192.0.2');
    expect(clientPrefix('2001:db8:aa:bbcc::1')).toBe('2001:db8:aa:bb/56');
    expect(clientPrefix('2001:DB8:AA:BBCC:1:2:3:4')).toBe('2001:db8:aa:bb/56');
    expect(clientPrefix('::1')).toBe('0:0:0:0/56');
    expect(clientPrefix('fe80::1%eth0')).toBe('fe80:0:0:0/56');
  });
});
