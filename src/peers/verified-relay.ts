import { Transform } from 'node:stream';
import { FillError } from '../cache/fill-error.js';
import { digestHex, hasherFor, type Digest } from '../registry/digest.js';

/**
 * Passes a blob's bytes on as they come while hashing them, and holds the last chunk back until the
 * whole matched `digest` (and `size`, when known): a body that is cut short or wrong never reaches its
 * end downstream, so a client can never take it for the blob. For bytes a peer replica relays:
 * trusted, but checked like anything that arrives.
 */
export function verifiedRelay(digest: Digest, size: number | undefined): Transform {
  const hash = hasherFor(digest);
  let held: Buffer | null = null;
  let received = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      if (size !== undefined && received > size) return callback(new FillError('size-mismatch', `more than the ${size} bytes of ${digest}`));
      hash.update(chunk);
      const previous = held;
      held = chunk;
      callback(null, previous ?? undefined);
    },
    flush(callback) {
      if (size !== undefined && received !== size) return callback(new FillError('truncated', `${received} of the ${size} bytes of ${digest}`));
      const hex = hash.digest('hex');
      if (hex !== digestHex(digest)) return callback(new FillError('digest-mismatch', `the relayed body hashes to ${hex}, not ${digest}`));
      callback(null, held ?? undefined);
    },
  });
}
