import { createHash, type Hash } from 'node:crypto';

/** `algorithm:hex`, validated: sha256 (64 hex) or sha512 (128 hex), lower case. */
export type Digest = string & { readonly __brand: 'Digest' };
export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const PATTERN = /^(sha256|sha512):([0-9a-f]+)$/;

/** The digest, or null when `text` is not a sha256/sha512 digest of the right length. */
export function parseDigest(text: string): Digest | null {
  const match = PATTERN.exec(text);
  if (!match) return null;
  return match[2]!.length === HEX_LENGTH[match[1] as DigestAlgorithm] ? (text as Digest) : null;
}

/** True for strings shaped like a digest (`alg:encoded`, OCI grammar), valid or not: such a reference is never a tag. */
export function looksLikeDigest(text: string): boolean {
  return /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(text);
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, 6) as DigestAlgorithm;
}

export function digestHex(digest: Digest): string {
  return digest.slice(7);
}

/** A running hash for `digest`'s algorithm. */
export function hasherFor(digest: Digest): Hash {
  return createHash(digestAlgorithm(digest));
}

/** The digest of `bytes` under `algorithm`. */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}
