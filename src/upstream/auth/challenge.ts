/** One challenge of a `WWW-Authenticate` header: scheme (lower case) and auth-params (names lower case). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
  /** A token68 instead of params (`Negotiate abc==`); registries do not use it. */
  readonly token68?: string;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
const TOKEN68 = /[A-Za-z0-9._~+/-]+=*/y;
const SPACE = /[ \t]*/y;
const UNQUOTED = /[^\s,"]+/y;

/**
 * Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1): several challenges in one header, params as
 * tokens or quoted strings with escapes, commas inside quotes, stray commas and spaces. Never
 * throws: what cannot be parsed ends the list. Several header lines may be passed as an array.
 */
export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (typeof header !== 'string') return header.flatMap((line) => parseChallenges(line));
  const out: Challenge[] = [];
  let pos = 0;
  const match = (re: RegExp): string | null => {
    re.lastIndex = pos;
    const m = re.exec(header);
    if (!m || m[0] === '') return null;
    pos = re.lastIndex;
    return m[0];
  };
  const skip = (chars: RegExp): void => {
    while (pos < header.length && chars.test(header[pos]!)) pos++;
  };
  const quoted = (): string | null => {
    if (header[pos] !== '"') return null;
    let value = '';
    for (let i = pos + 1; i < header.length; i++) {
      const c = header[i]!;
      if (c === '\\' && i + 1 < header.length) value += header[++i];
      else if (c === '"') {
        pos = i + 1;
        return value;
      } else value += c;
    }
    return null; // unterminated
  };

  while (pos < header.length) {
    skip(/[\s,]/);
    const scheme = match(TOKEN);
    if (!scheme) break;
    const params: Record<string, string> = {};
    let token68: string | undefined;
    match(SPACE);
    // auth-params: name = (token | quoted-string), separated by commas; a name not followed by `=` starts the next challenge.
    for (;;) {
      const start = pos;
      skip(/[\s,]/);
      const name = match(TOKEN);
      if (!name) {
        pos = start;
        break;
      }
      match(SPACE);
      if (header[pos] !== '=') {
        pos = start;
        break;
      }
      pos++;
      match(SPACE);
      if (header[pos] === '=') {
        // `abc==`: a token68, not a param.
        pos = start;
        skip(/[\s,]/);
        token68 = match(TOKEN68) ?? undefined;
        break;
      }
      let value: string | null;
      if (header[pos] === '"') {
        value = quoted();
        if (value === null) {
          pos = header.length; // unterminated: nothing after it can be trusted
          break;
        }
      } else value = match(UNQUOTED) ?? ''; // servers do send realm=https://... unquoted
      params[name.toLowerCase()] = value;
      match(SPACE);
    }
    if (token68 === undefined && Object.keys(params).length === 0) {
      skip(/[ \t]/);
      const start = pos;
      const t = match(TOKEN68);
      // A token68 stands alone: followed by the end or a comma.
      if (t && !/^[ \t]*(,|$)/.test(header.slice(pos))) pos = start;
      else if (t) token68 = t;
    }
    out.push(token68 === undefined ? { scheme: scheme.toLowerCase(), params } : { scheme: scheme.toLowerCase(), params, token68 });
  }
  return out;
}

/** A challenge written back as a header value, every param quoted. */
export function formatChallenge(challenge: Challenge): string {
  const scheme = challenge.scheme === 'bearer' ? 'Bearer' : challenge.scheme === 'basic' ? 'Basic' : challenge.scheme;
  if (challenge.token68 !== undefined) return `${scheme} ${challenge.token68}`;
  const params = Object.entries(challenge.params).map(([name, value]) => `${name}="${value.replace(/["\\]/g, '\\$&')}"`);
  return params.length > 0 ? `${scheme} ${params.join(',')}` : scheme;
}

/** The challenge Layover answers: Bearer (with a realm) over Basic; others are not spoken. */
export function preferredChallenge(challenges: readonly Challenge[]): Challenge | null {
  return challenges.find((c) => c.scheme === 'bearer' && c.params.realm) ?? challenges.find((c) => c.scheme === 'basic') ?? null;
}
