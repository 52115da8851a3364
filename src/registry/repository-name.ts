/** An OCI repository name (`library/alpine`, `a/b/c`), checked against the distribution grammar. */
export type RepositoryName = string & { readonly __brand: 'RepositoryName' };

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
/** The distribution registry's own limit on a whole name. */
const MAX_LENGTH = 255;

export function parseRepositoryName(text: string): RepositoryName | null {
  if (text.length === 0 || text.length > MAX_LENGTH) return null;
  return text.split('/').every((component) => COMPONENT.test(component)) ? (text as RepositoryName) : null;
}

/** An OCI tag: at most 128 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`. */
export function isTag(text: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(text);
}
