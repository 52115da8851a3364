import { describe, expect, it } from 'vitest';
import { escapeDnValue, escapeFilterValue, fillTemplate } from '../../../src/client-auth/authenticators/ldap-escape.js';

describe('escapeFilterValue (RFC 4515)', () => {
  it('turns *, (, ), \\ and NUL into hex pairs and leaves the rest', () => {
    expect(escapeFilterValue('alice')).toBe('alice');
    expect(escapeFilterValue('a*b(c)d\\e\u0000f')).toBe('a\\2ab\\28c\\29d\\5ce\\00f');
    expect(escapeFilterValue('bob)(memberUid=*')).toBe('bob\\29\\28memberUid=\\2a');
    expect(escapeFilterValue('jörg, o=x')).toBe('jörg, o=x');
  });
});

describe('escapeDnValue (RFC 4514)', () => {
  it('puts a backslash before the special characters and hex-escapes control characters', () => {
    expect(escapeDnValue('alice')).toBe('alice');
    expect(escapeDnValue('doe, jane')).toBe('doe\\, jane');
    expect(escapeDnValue('a+b"c\\d<e>f;g=h')).toBe('a\\+b\\"c\\\\d\\<e\\>f\\;g\\=h');
    expect(escapeDnValue('a\u0000b\nc')).toBe('a\\00b\\0ac');
    expect(escapeDnValue('alic\\65')).toBe('alic\\\\65');
  });

  it('escapes a leading # or space and a trailing space, not inner ones', () => {
    expect(escapeDnValue('#x')).toBe('\\#x');
    expect(escapeDnValue('x#')).toBe('x#');
    expect(escapeDnValue(' a b ')).toBe('\\20a b\\20');
    expect(escapeDnValue(' ')).toBe('\\20');
    expect(escapeDnValue('a\\ ')).toBe('a\\\\\\20');
  });
});

describe('fillTemplate', () => {
  it('escapes the values, never the template, and leaves unknown placeholders alone', () => {
    expect(fillTemplate('(&(uid={user})(objectClass=person))', { user: '*' }, escapeFilterValue)).toBe('(&(uid=\\2a)(objectClass=person))');
    expect(fillTemplate('(|(member={dn})(memberUid={user}))', { dn: 'uid=a\\,b,ou=p', user: 'a,b' }, escapeFilterValue)).toBe('(|(member=uid=a\\5c,b,ou=p)(memberUid=a,b))');
    expect(fillTemplate('uid={user},ou=people', { user: '{user}' }, escapeDnValue)).toBe('uid={user},ou=people');
    expect(fillTemplate('{other}', { user: 'x' }, escapeDnValue)).toBe('{other}');
  });
});
