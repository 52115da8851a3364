/**
 * What a client types as its user name ends up inside a DN (LDAP_USER_DN) and
 * inside search filters (LDAP_SEARCH_FILTER, LDAP_GROUP_FILTER). Unescaped, a
 * name such as `*` or `alice)(uid=*` would change what is searched for, and
 * `alice,ou=admins` which entry is bound as: LDAP injection. Every value is
 * escaped for the place it goes, never the template around it.
 */

const hex = (char: string): string =>
  [...Buffer.from(char, 'utf8')].map((byte) => `\\${byte.toString(16).padStart(2, '0')}`).join('');

/**
 * An attribute value for a DN string (RFC 4514 section 2.4): `"+,;<>\` and `=`
 * (which some servers misparse unescaped) get a backslash, as does a leading
 * `#`; NUL and other control characters, and a leading or trailing space,
 * become hex pairs.
 */
export function escapeDnValue(value: string): string {
  const chars = [...value];
  return chars
    .map((char, index) => {
      if (/[\u0000-\u001f\u007f]/.test(char)) return hex(char);
      if ('\\"+,;<>='.includes(char)) return `\\${char}`;
      if (char === ' ' && (index === 0 || index === chars.length - 1)) return '\\20';
      if (char === '#' && index === 0) return '\\#';
      return char;
    })
    .join('');
}

/** A value for an LDAP search filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL as hex pairs. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\u0000]/g, hex);
}

/** `template` with every `{name}` replaced by the escaped value; other text is taken as configured. */
export function fillTemplate(template: string, values: Record<string, string>, escape: (value: string) => string): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (Object.hasOwn(values, name) ? escape(values[name]!) : whole));
}
