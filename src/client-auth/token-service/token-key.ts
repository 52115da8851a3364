import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { ConfigError } from '../../config/config-error.js';
import { writeFileDurably } from '../../tls/durable-file.js';

export interface TokenKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The key's JWK thumbprint: tokens name it, so a token signed with another key is told apart at once. */
  readonly kid: string;
}

export interface TokenKeyFileOptions {
  /** false on a shared cache index: a key made here would be this replica's alone. */
  createIfMissing: boolean;
}

/**
 * The key Layover signs its clients' tokens with (ES256), kept in `file`
 * (CLIENT_TOKEN_KEY_FILE, default `<dataDir>/client-token-key.pem`) with mode
 * 0600 and created on first use, unless `createIfMissing` is off: replicas of
 * one shared index must sign with one key, or a token one issued is refused by
 * the next. Kept rather than made at each start, so a restart does not turn
 * every token clients hold into a 401; random rather than derived from the
 * CA's key, so one key serves one purpose and replacing either leaves the
 * other alone. Deleting the file revokes every token issued (clients fetch new
 * ones).
 */
export async function loadOrCreateTokenKey(file: string, { createIfMissing }: TokenKeyFileOptions = { createIfMissing: true }): Promise<TokenKey> {
  let pem = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (pem === null) {
    if (!createIfMissing) {
      throw new ConfigError(
        `CLIENT_TOKEN_KEY_FILE: ${file} does not exist, and replicas sharing CACHE_INDEX must sign with one key (with keys of their own they refuse each other's tokens): make it once (an EC P-256 private key in PEM: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256) and give every replica the same file`,
      );
    }
    await mkdir(dirname(file), { recursive: true });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // link() publishes without replacing: of two processes starting at once, both end up with the first key.
    await writeFileDurably(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
    pem = await readFile(file, 'utf8');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new ConfigError(`${file}: not a PEM private key (delete it to have a new one made)`, { cause: error });
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ConfigError(`${file}: expected an EC P-256 key (delete it to have a new one made)`);
  }
  const publicKey = createPublicKey(privateKey);
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return { privateKey, publicKey, kid };
}
