/**
 * Replicas over one shared cache index must sign docker.proxy URLs and client tokens with one key
 * each: a replica that made keys of its own in its data dir would refuse the URLs and tokens the
 * others hand out, whichever replica the load balancer picks next. On a shared index (CACHE_INDEX
 * redis:// or postgres://, not connected here: the keys are loaded before anything needs it) a
 * missing key stops the start in one line naming REDIRECT_KEY_FILE or CLIENT_TOKEN_KEY_FILE, and
 * nothing is created; given the files, every replica signs with the same keys. With the default
 * SQLite index (one Layover) keys are still made on first use, at the configured path.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createClientAuth } from '../../../src/client-auth/create-client-auth.js';
import { TOKEN_KEY_FILE } from '../../../src/client-auth/token-service/token-key-file.js';
import { loadOrCreateTokenKey } from '../../../src/client-auth/token-service/token-key.js';
import { ConfigError } from '../../../src/config/config-error.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { REDIRECT_KEY_FILE } from '../../../src/proxy/redirects/signed-url.js';
import { StorageRedirects } from '../../../src/proxy/redirects/storage-redirects.js';
import { parseDigest } from '../../../src/registry/digest.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'layover-shared-keys-'));
  dirs.push(dir);
  return dir;
}

const DIGEST = parseDigest(`sha256:${'a'.repeat(64)}`)!;
/** A replica's configuration: a data dir of its own, the token service on, and `env` on top. */
function replica(dataDir: string, env: Record<string, string>) {
  const htpasswd = join(dataDir, '..', 'htpasswd');
  writeFileSync(htpasswd, '');
  return loadConfig({
    env: { LAYOVER_DATA_DIR: dataDir, REGISTRIES: 'ghcr.io', CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd, CLIENT_AUTH_CHALLENGE: 'bearer', ...env },
    machine: { advertise: () => ['127.0.0.1'], upstreamDns: () => [{ host: '127.0.0.1', port: 9 }] },
  });
}
const SHARED = { CACHE_INDEX: 'redis://127.0.0.1:9/0', BLOB_STORE: 's3://layover/cache?endpoint=http://127.0.0.1:9&pathStyle=true' };
const logger = (): Logger => captureLogger().logger as Logger;
const redirects = (config: ReturnType<typeof replica>) => StorageRedirects.open(config, new HostnameSet(config.registries));

describe('signing keys of replicas that share a cache index', () => {
  it('a missing key stops the start with a ConfigError naming its setting, and no key is made', async () => {
    const dataDir = join(tempDir(), 'data');
    const config = replica(dataDir, SHARED);
    const redirectError = await redirects(config).catch((error: unknown) => error);
    expect(redirectError).toBeInstanceOf(ConfigError);
    expect((redirectError as Error).message).toMatch(new RegExp(`^REDIRECT_KEY_FILE: ${join(dataDir, REDIRECT_KEY_FILE)} does not exist, and replicas sharing CACHE_INDEX must sign with one key`));
    const tokenError = await createClientAuth(config, logger()).catch((error: unknown) => error);
    expect(tokenError).toBeInstanceOf(ConfigError);
    expect((tokenError as Error).message).toMatch(new RegExp(`^CLIENT_TOKEN_KEY_FILE: ${join(dataDir, TOKEN_KEY_FILE)} does not exist`));
    for (const error of [redirectError, tokenError]) expect((error as Error).message).not.toContain('\n');
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
  });

  it('given REDIRECT_KEY_FILE and CLIENT_TOKEN_KEY_FILE, two replicas accept each other\'s URLs and tokens', async () => {
    const secrets = tempDir();
    const redirectKey = join(secrets, 'redirect.key');
    writeFileSync(redirectKey, randomBytes(32), { mode: 0o600 });
    const tokenKey = join(secrets, 'token.pem');
    await loadOrCreateTokenKey(tokenKey);
    const env = { ...SHARED, REDIRECT_KEY_FILE: redirectKey, CLIENT_TOKEN_KEY_FILE: tokenKey };
    const [one, two] = [replica(join(tempDir(), 'data'), env), replica(join(tempDir(), 'data'), env)];

    const signed = new URL((await redirects(one)).signedUrl('ghcr.io', { digest: DIGEST, registry: 'ghcr.io', repo: 'team/app', target: 'https://storage.test/blob' }));
    expect((await redirects(two)).verify(DIGEST, signed.searchParams)).toMatchObject({ digest: DIGEST, repo: 'team/app' });

    const issued = await (await createClientAuth(one, logger()))!.tokens!.issue({ user: 'alice', groups: [] }, 'ghcr.io', []);
    const other = (await createClientAuth(two, logger()))!.tokens!;
    expect(other.isOurs(issued.token)).toBe(true);
    expect(await other.verify(issued.token, 'ghcr.io')).toMatchObject({ identity: { user: 'alice' } });
  });

  it('one Layover on SQLite still makes its keys on first use, where the settings say', async () => {
    const dir = tempDir();
    const config = replica(join(dir, 'data'), { REDIRECT_KEY_FILE: join(dir, 'keys', 'redirect.key') });
    await redirects(config);
    await createClientAuth(config, logger());
    expect(readdirSync(join(dir, 'keys'))).toEqual(['redirect.key']);
    expect(readdirSync(join(dir, 'data'))).toEqual([TOKEN_KEY_FILE]);
  });
});
