import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ConfigError } from '../../config/config-error.js';
import type { Authenticator, ClientIdentity } from '../authenticator.js';
import { parseBasic } from '../authenticator.js';
import { BcryptChecks } from './bcrypt-checks.js';
import { RememberedCredentials } from './remembered.js';

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
/** A bcrypt hash of nothing anyone knows, at `cost` (two digits). */
const dummyHash = (cost: string): string => `$2b$${cost}$IZhM08O5Zlha6VIIKGc5CeTcQ7zhoLfaruSgs0bolyAKRLRvNBUQq`;
/** When no CLIENT_AUTH_CACHE_TTL is given (tests). */
const DEFAULT_REMEMBER_MS = 60_000;

export interface HtpasswdOptions {
  file: string;
  logger: Logger;
  /** How often at most the file's mtime is looked at (tests pass 0). */
  checkIntervalMs?: number;
  /** How long a success is remembered (CLIENT_AUTH_CACHE_TTL). */
  rememberMs?: number;
}

/**
 * `CLIENT_AUTH=htpasswd`: users from an Apache htpasswd file of bcrypt hashes
 * (`htpasswd -B`), read again when its mtime, size or inode changes. A bcrypt
 * check takes tens of milliseconds and a pull makes dozens of requests, so a
 * success is remembered for CLIENT_AUTH_CACHE_TTL (./remembered.ts: bounded,
 * never the password itself) and forgotten when the file changes.
 */
export class HtpasswdAuthenticator implements Authenticator {
  readonly #file: string;
  readonly #logger: Logger;
  readonly #checkIntervalMs: number;
  readonly #remembered: RememberedCredentials;
  readonly #bcrypt = new BcryptChecks();
  #users = new Map<string, string>();
  #dummy = dummyHash('10');
  #version = '';
  #lastCheck = 0;
  #checking: Promise<void> | null = null;

  private constructor(options: HtpasswdOptions) {
    this.#file = options.file;
    this.#logger = options.logger;
    this.#checkIntervalMs = options.checkIntervalMs ?? 1_000;
    this.#remembered = new RememberedCredentials({ ttlMs: options.rememberMs ?? DEFAULT_REMEMBER_MS });
  }

  /** Reads the file once; a missing or unreadable file fails the start. */
  static async open(options: HtpasswdOptions): Promise<HtpasswdAuthenticator> {
    const authenticator = new HtpasswdAuthenticator(options);
    try {
      await authenticator.#load();
    } catch (error) {
      throw new ConfigError(`HTPASSWD_FILE: cannot read ${options.file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
    }
    return authenticator;
  }

  async authenticate(authorization: string | undefined, source = ''): Promise<ClientIdentity | null> {
    const basic = parseBasic(authorization);
    if (!basic) return null;
    await this.#refresh();
    return this.#remembered.check(basic.user, basic.password, async () => {
      const hash = this.#users.get(basic.user);
      const ok = await this.#bcrypt.compare(basic.password, hash ?? this.#dummy, source);
      if (!ok || !hash) return null;
      return Object.freeze({ user: basic.user, groups: Object.freeze([]) });
    });
  }

  /** While the user is in the file, as last read (the file is looked at again first, as for a sign-in). */
  async stillValid(user: string): Promise<boolean> {
    await this.#refresh();
    return this.#users.has(user);
  }

  #refresh(): Promise<void> {
    if (this.#checking) return this.#checking;
    if (Date.now() - this.#lastCheck < this.#checkIntervalMs) return Promise.resolve();
    this.#checking = this.#reloadIfChanged().finally(() => {
      this.#lastCheck = Date.now();
      this.#checking = null;
    });
    return this.#checking;
  }

  async #reloadIfChanged(): Promise<void> {
    try {
      const s = await stat(this.#file);
      if (`${s.mtimeMs}:${s.size}:${s.ino}` !== this.#version) await this.#load();
    } catch (error) {
      // Keep the users we have: a file being replaced must not lock everyone out.
      this.#logger.warn({ file: this.#file, code: (error as NodeJS.ErrnoException).code }, 'cannot read the htpasswd file: keeping the users read before');
    }
  }

  async #load(): Promise<void> {
    const before = await stat(this.#file);
    const text = await readFile(this.#file, 'utf8');
    const users = new Map<string, string>();
    const skipped: number[] = [];
    text.split(/\r?\n/).forEach((line, index) => {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) return;
      const colon = trimmed.indexOf(':');
      const hash = colon > 0 ? trimmed.slice(colon + 1) : '';
      if (BCRYPT.test(hash)) users.set(trimmed.slice(0, colon), hash);
      else skipped.push(index + 1);
    });
    // Line numbers only: a line that is not a bcrypt hash may be a plain-text password.
    if (skipped.length > 0) this.#logger.warn({ file: this.#file, lines: skipped }, 'htpasswd lines that are not bcrypt (htpasswd -B) are ignored');
    this.#users = users;
    this.#dummy = unknownUserHash(users.values());
    this.#version = `${before.mtimeMs}:${before.size}:${before.ino}`;
    this.#remembered.clear();
    this.#logger.info({ file: this.#file, users: users.size }, 'read the htpasswd file');
  }
}

/**
 * What a password for an unknown user is compared against, so that it costs as long as a wrong
 * password: at the cost most of the file's `hashes` have (`htpasswd -B` writes 5, `-C` another),
 * or the time a check takes would tell which users exist; 10 for an empty file.
 */
export function unknownUserHash(hashes: Iterable<string>): string {
  const counts = new Map<string, number>();
  for (const hash of hashes) {
    const cost = hash.slice(4, 6);
    counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  let best = '10';
  let most = 0;
  for (const [cost, count] of counts) {
    if (count > most) [best, most] = [cost, count];
  }
  return dummyHash(best);
}
