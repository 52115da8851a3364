import { createHmac, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';

/** The header a replica signs its requests to another replica with. */
export const PEER_SIGNATURE_HEADER = 'x-layover-peer';
/** How long a signature may be used: requests go out the moment they are signed; clocks of a fleet differ by little. */
const SIGNATURE_VALID_MS = 30_000;
const SIGNATURE = /^(\d{1,15})\.([0-9a-f]{64})$/;

/**
 * The secret replicas of one fleet prove themselves to each other with. They already share the CA
 * (clients trust one CA, whichever replica answers), so the key is derived from its private key (HKDF
 * with a purpose of its own): no further setting, and nothing else can be done with it.
 */
export class PeerKey {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  static fromCa(caPrivateKey: KeyObject): PeerKey {
    const secret = caPrivateKey.export({ type: 'pkcs8', format: 'der' });
    return new PeerKey(Buffer.from(hkdfSync('sha256', secret, 'layover', 'peer requests v1', 32)));
  }

  /** `<expiry ms>.<hmac>` over the method, the path and the expiry. */
  sign(method: string, path: string, now = Date.now()): string {
    const expires = now + SIGNATURE_VALID_MS;
    return `${expires}.${this.mac(method, path, expires)}`;
  }

  /** True for a signature of this method and path by a holder of the key that has not expired. */
  verify(method: string, path: string, signature: string | string[] | undefined, now = Date.now()): boolean {
    const match = typeof signature === 'string' ? SIGNATURE.exec(signature) : null;
    if (!match) return false;
    const expires = Number(match[1]);
    // An expiry further out than a fresh signature's is not one this fleet made.
    if (expires < now || expires > now + SIGNATURE_VALID_MS * 2) return false;
    return timingSafeEqual(Buffer.from(match[2]!, 'hex'), Buffer.from(this.mac(method, path, expires), 'hex'));
  }

  private mac(method: string, path: string, expires: number): string {
    return createHmac('sha256', this.#key).update(`${method} ${path} ${expires}`).digest('hex');
  }
}
