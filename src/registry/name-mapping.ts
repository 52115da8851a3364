import { parseRepositoryName, type RepositoryName } from './repository-name.js';

/**
 * Repository names as a client writes them and as the upstream knows them, when the two differ
 * by a leading prefix: a mirror path prefix (`registry.test/bench/oci` <-> `bench/oci`) or a
 * custom domain (`team/app/x` <-> `my-project/team/app/x`). Prefixes are whole path components:
 * `team/app` covers `team/app` and `team/app/x`, never `team/apples`.
 */
export class NameMapping {
  static readonly IDENTITY = new NameMapping('', '');

  constructor(
    /** What client names start with ('' for all names). */
    readonly clientPrefix: string,
    /** What that prefix is upstream ('' for none). */
    readonly upstreamPrefix: string,
  ) {}

  get identity(): boolean {
    return this.clientPrefix === this.upstreamPrefix;
  }

  /** The upstream name of a client's name; null when it is outside the prefix or the result is no valid name. */
  toUpstream(name: string): RepositoryName | null {
    return swapPrefix(name, this.clientPrefix, this.upstreamPrefix);
  }

  /** The client's name for an upstream name; null when the upstream name is outside what this mapping reaches. */
  toClient(name: string): RepositoryName | null {
    return swapPrefix(name, this.upstreamPrefix, this.clientPrefix);
  }

  /** Token scopes (`repository:name:actions`, space-separated lists too) with client names made upstream names; others dropped. */
  scopesToUpstream(scope: string): string {
    return mapRepositoryScopes(scope, (name) => this.toUpstream(name));
  }

  /** Token scopes with upstream names made client names; repository scopes outside the mapping are dropped. */
  scopesToClient(scope: string): string {
    return mapRepositoryScopes(scope, (name) => this.toClient(name));
  }
}

function swapPrefix(name: string, from: string, to: string): RepositoryName | null {
  let rest: string;
  if (from === '') rest = name;
  else if (name === from) rest = '';
  else if (name.startsWith(`${from}/`)) rest = name.slice(from.length + 1);
  else return null;
  return parseRepositoryName([to, rest].filter((part) => part !== '').join('/'));
}

/**
 * `type:name:actions` as the distribution token spec writes scopes (the name is what lies between
 * the first and the last colon). Repository scopes are mapped or dropped; scopes of other types
 * (`registry:catalog:*`) name no repository and are kept.
 */
export function mapRepositoryScopes(value: string, map: (name: string) => string | null): string {
  return value
    .split(/\s+/)
    .filter((scope) => scope !== '')
    .flatMap((scope) => {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last === first) return [scope];
      const type = scope.slice(0, first);
      if (type !== 'repository' && !type.startsWith('repository(')) return [scope];
      const mapped = map(scope.slice(first + 1, last));
      return mapped === null ? [] : [`${type}:${mapped}${scope.slice(last)}`];
    })
    .join(' ');
}
