import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../config/config-error.js';

/** The admin token's file in the data dir, unless ADMIN_TOKEN_FILE names another. */
export const ADMIN_TOKEN_FILE = 'admin.token';

/** Shorter than this, a token in a file is refused: it could be guessed. */
const MIN_TOKEN_LENGTH = 16;

/**
 * The admin API's bearer token: read from `file` (surrounding white space dropped), or made once
 * (32 random bytes, base64url, mode 0600) so that `layover` commands on the same host find it
 * there without any set-up.
 */
export async function loadOrCreateAdminToken(file: string): Promise<string> {
  const existing = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (existing !== null) {
    const token = existing.trim();
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`ADMIN_TOKEN_FILE: ${file} holds fewer than ${MIN_TOKEN_LENGTH} characters; write a long random token there`);
    return token;
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${token}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return token;
}

/** The token of a running Layover, for the CLI on the same host; null when there is none or it cannot be read. */
export async function readAdminToken(file: string): Promise<string | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  const token = text?.trim();
  return token && token.length >= MIN_TOKEN_LENGTH ? token : null;
}
