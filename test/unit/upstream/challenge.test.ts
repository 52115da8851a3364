import { describe, expect, it } from 'vitest';
import { formatChallenge, parseChallenges, preferredChallenge } from '../../../src/upstream/auth/challenge.js';

describe('parseChallenges', () => {
  it("reads Docker Hub's challenge", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
  });

  it('keeps commas and escaped quotes inside quoted strings', () => {
    const [challenge] = parseChallenges('Bearer realm="https://r.example/t?a=1,b=2",scope="repository:a:pull,push",error="say \\"no\\""');
    expect(challenge!.params).toEqual({ realm: 'https://r.example/t?a=1,b=2', scope: 'repository:a:pull,push', error: 'say "no"' });
  });

  it('splits several challenges in one header and across lines, case-insensitively', () => {
    const challenges = parseChallenges('Basic realm="registry" , BEARER Realm=https://a.example/token, service=a.example');
    expect(challenges).toEqual([
      { scheme: 'basic', params: { realm: 'registry' } },
      { scheme: 'bearer', params: { realm: 'https://a.example/token', service: 'a.example' } },
    ]);
    expect(parseChallenges(['Basic realm="x"', 'Negotiate abc=='])).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'negotiate', params: {}, token68: 'abc==' },
    ]);
    expect(parseChallenges('Basic, Bearer realm="r"').map((c) => c.scheme)).toEqual(['basic', 'bearer']);
  });

  it('never throws on garbage and stops at what it cannot read', () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('Bearer realm="unterminated')).toEqual([{ scheme: 'bearer', params: {} }]);
    for (const junk of ['=', '",,,"', 'Bearer ,,, =x', '\u0000\u00ff', 'Basic realm=', 'a'.repeat(10_000)]) expect(() => parseChallenges(junk)).not.toThrow();
  });

  it('prefers Bearer with a realm over Basic, and formats a challenge back', () => {
    const both = parseChallenges('Basic realm="x", Bearer realm="https://t/x",service="s"');
    expect(preferredChallenge(both)?.scheme).toBe('bearer');
    expect(preferredChallenge(parseChallenges('Bearer service="no realm", Basic realm="x"'))?.scheme).toBe('basic');
    expect(preferredChallenge(parseChallenges('Negotiate abc'))).toBeNull();
    const text = formatChallenge({ scheme: 'bearer', params: { realm: 'https://r/t', error: 'a "b"' } });
    expect(text).toBe('Bearer realm="https://r/t",error="a \\"b\\""');
    expect(parseChallenges(text)[0]!.params.error).toBe('a "b"');
  });
});
