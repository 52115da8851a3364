import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { AnswerCache } from '../../../src/dns/answer-cache.js';
import { cacheLifetime, MAX_NEGATIVE_TTL } from '../../../src/dns/cache-lifetime.js';
import { QTYPE, RCODE } from '../../../src/dns/wire.js';
import { reply, soa } from './packets.js';

const positive = reply('other.test', QTYPE.A, {
  answers: [{ type: QTYPE.A, address: '192.0.2.7', ttl: 100 }, { type: QTYPE.A, address: '192.0.2.8', ttl: 30 }],
  authorities: [{ name: 'test', type: Packet.TYPE.NS, ns: 'ns.test', ttl: 1000 }],
  additionals: [Packet.Resource.EDNS([], {})],
});

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('cacheLifetime', () => {
  it('takes the smallest TTL of the answer section', () => {
    expect(cacheLifetime(positive)?.ttl).toBe(30);
    expect(cacheLifetime(positive)?.ttlOffsets).toHaveLength(3);
  });
  it('takes negative answers from the SOA, capped', () => {
    const nx = (ttl: number, minimum: number) => reply('x.test', QTYPE.A, { rcode: RCODE.NXDOMAIN, authorities: [soa(ttl, minimum)] });
    expect(cacheLifetime(nx(900, 60))?.ttl).toBe(60);
    expect(cacheLifetime(nx(45, 600))?.ttl).toBe(45);
    expect(cacheLifetime(nx(3600, 3600))?.ttl).toBe(MAX_NEGATIVE_TTL);
    expect(cacheLifetime(reply('x.test', QTYPE.AAAA, { authorities: [soa(900, 120)] }))?.ttl).toBe(120);
  });
  it('keeps an NXDOMAIN that ends a CNAME chain no longer than the chain\'s own TTL', () => {
    const chain = reply('alias.test', QTYPE.A, { rcode: RCODE.NXDOMAIN, answers: [{ type: Packet.TYPE.CNAME, domain: 'gone.test', ttl: 5 }], authorities: [soa(900, 300)] });
    expect(cacheLifetime(chain)?.ttl).toBe(5);
  });
  it('keeps a CNAME chain that ends without the type asked (NODATA) as a negative answer, from its SOA', () => {
    const cname = { type: Packet.TYPE.CNAME, domain: 'target.test', ttl: 3600 };
    expect(cacheLifetime(reply('alias.test', QTYPE.A, { answers: [cname], authorities: [soa(900, 60)] }))?.ttl).toBe(60);
    expect(cacheLifetime(reply('alias.test', QTYPE.A, { answers: [cname] }))).toBeNull();
    // The chain with its answer, and the CNAME asked for itself, are positive answers.
    expect(cacheLifetime(reply('alias.test', QTYPE.A, { answers: [cname, { name: 'target.test', type: QTYPE.A, address: '192.0.2.9', ttl: 600 }] }))?.ttl).toBe(600);
    expect(cacheLifetime(reply('alias.test', Packet.TYPE.CNAME, { answers: [cname] }))?.ttl).toBe(3600);
  });
  it.each([
    ['NXDOMAIN without an SOA', reply('x.test', QTYPE.A, { rcode: RCODE.NXDOMAIN })],
    ['SERVFAIL', reply('x.test', QTYPE.A, { rcode: RCODE.SERVFAIL, authorities: [soa(900, 60)] })],
    ['a truncated reply', reply('x.test', QTYPE.A, { tc: true, answers: [{ type: QTYPE.A, address: '192.0.2.7' }] })],
    ['a TTL of 0', reply('x.test', QTYPE.A, { answers: [{ type: QTYPE.A, address: '192.0.2.7', ttl: 0 }] })],
    ['a malformed body', positive.subarray(0, positive.length - 5)],
  ])('refuses %s', (_, msg) => {
    expect(cacheLifetime(msg)).toBeNull();
  });
});

describe('AnswerCache', () => {
  it('serves copies whose TTLs count down, until the smallest expires', () => {
    const time = clock();
    const cache = new AnswerCache(10, time.now);
    expect(cache.set('k', positive)).toBe(true);
    time.advance(12_500);
    const served = Packet.parse(cache.get('k')!);
    expect(served.answers.map((r) => r.ttl)).toEqual([88, 18]);
    expect(served.authorities[0]?.ttl).toBe(988);
    expect(served.additionals[0]?.type).toBe(Packet.TYPE.EDNS);
    expect(served.additionals[0]?.ttl).toBe(0);
    // Copies: changing one changes neither the cache nor the next copy.
    cache.get('k')!.fill(0);
    expect(Packet.parse(cache.get('k')!).answers[0]?.address).toBe('192.0.2.7');
    time.advance(17_500);
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used entry beyond its bound', () => {
    const cache = new AnswerCache(2, clock().now);
    cache.set('a', positive);
    cache.set('b', positive);
    cache.get('a');
    cache.set('c', positive);
    expect([cache.get('a'), cache.get('b'), cache.get('c')].map(Boolean)).toEqual([true, false, true]);
    expect(cache.size).toBe(2);
  });

  it('stores nothing that may not be cached, and nothing at all with a bound of 0', () => {
    const cache = new AnswerCache(10, clock().now);
    expect(cache.set('k', reply('x.test', QTYPE.A, { rcode: RCODE.SERVFAIL }))).toBe(false);
    expect(new AnswerCache(0).set('k', positive)).toBe(false);
    expect(() => new AnswerCache(-1)).toThrow(/cacheEntries/);
  });
});
