/**
 * Issue 10, "what a new user hits": `layover config` printed Layover's internal structure, which
 * `--config` refused. It now prints a config file that loads back to the same effective configuration,
 * and still never prints a credential: settings and entries that hold one inline are left out (with a
 * comment), references to files and variables stay.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { printConfig } from '../../../src/cli/print-config.js';
import type { LayoverConfig } from '../../../src/config/layover-config.js';
import { loadConfig, type FlagValues } from '../../../src/config/load-config.js';
import { Secret } from '../../../src/config/secret.js';

const machine = { advertise: () => ['10.1.2.3'], upstreamDns: () => [{ host: '127.0.0.1', port: 9 }], recursionNetworks: () => ['10.0.0.0/8', '127.0.0.0/8'] };
const dir = mkdtempSync(join(tmpdir(), 'layover-config-print-'));
const file = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

/** Everything the configuration holds, credentials revealed, so a lost or changed one shows. */
function effective(config: LayoverConfig): unknown {
  const plain = (value: unknown): unknown => {
    if (value instanceof Secret) return `secret:${value.reveal()}`;
    if (value instanceof RegExp) return `regex:${value.source}`;
    if (Array.isArray(value)) return value.map(plain);
    if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
    return value;
  };
  return plain({ ...config, configFile: null });
}

/** Print with these sources, then load the printed file with only `envAfter` (the secrets' variables) beside it. */
function roundTrip(sources: { flags?: FlagValues; env?: NodeJS.ProcessEnv }, envAfter: NodeJS.ProcessEnv) {
  const original = loadConfig({ ...sources, machine });
  const printed = printConfig(original, { flags: sources.flags ?? {}, env: sources.env ?? {} });
  const reloaded = loadConfig({ flags: { config: file(`printed-${Math.random()}.yaml`, printed) }, env: envAfter, machine });
  return { original, printed, reloaded };
}

describe('layover config', () => {
  it('prints defaults in the form the settings take, and they load back to the same configuration', () => {
    const { original, printed, reloaded } = roundTrip({}, {});
    expect(effective(reloaded)).toEqual(effective(original));
    expect(printed).toMatch(/^cacheMaxSize: 32g$/m);
    expect(printed).toMatch(/^shutdownGrace: 25s$/m);
    expect(printed).toMatch(/^proxy: 0\.0\.0\.0:3128$/m);
  });

  it('keeps what flags, the environment and a config file gave, and credential references', () => {
    const tokenFile = file('ci-token', 'ci-token-value-0123456789\n');
    const given = file(
      'given.yaml',
      stringify({
        registries: ['quay.io', 'registry.example:5000', '*.pkg.dev'],
        authRegistries: [
          { registry: 'quay.io', username: 'bob', passwordEnv: 'QUAY_PASSWORD' },
          { registry: 'registry.example:5000/team', username: 'carol', passwordFile: tokenFile, realm: 'auth.example.org' },
          { registry: 'public.ecr.aws', helper: 'ecr-login', maxAge: '6h' },
        ],
        clientAuth: 'tokens',
        clientTokens: [{ user: 'ci', tokenFile, groups: ['builders'] }],
        clientGroups: { builders: ['ci', 'dave'] },
        accessRules: [{ groups: ['builders'], repositories: ['team/*'], actions: ['pull', 'push'] }],
        manifestCachePrimaryTime: '2h',
        manifestCacheSecondaryRegex: '',
        dns: 'off',
        dnsTcpMaxPerClient: 8,
      }),
    );
    const flags = { config: given, https: '127.0.0.1:8443', 'verify-ssl': false, 'shutdown-grace': '90s', 'data-dir': 'relative-data' };
    const env = { CACHE_MAX_SIZE: '10g', REDIRECT_ALLOW_NETWORKS: '10.9.0.0/16', QUAY_PASSWORD: 'from-the-environment' };
    const { original, printed, reloaded } = roundTrip({ flags, env }, { QUAY_PASSWORD: 'from-the-environment' });
    expect(effective(reloaded)).toEqual(effective(original));
    expect(printed).not.toContain('from-the-environment');
    expect(printed).not.toContain('ci-token-value');
    expect(printed).toContain('passwordEnv: QUAY_PASSWORD');
  });

  it('leaves out credentials given inline, says so, and what it prints still loads', () => {
    const given = file(
      'inline.yaml',
      stringify({
        authRegistries: [
          { registry: 'quay.io', username: 'bob', password: 'inline-hunter2' },
          { registry: 'ghcr.io', username: 'alice', passwordEnv: 'GHCR_PASSWORD' },
        ],
      }),
    );
    const env = { GHCR_PASSWORD: 'ghcr-secret', CLIENT_AUTH: 'ldap', LDAP_URL: 'ldap://127.0.0.1:389', LDAP_SEARCH_BASE: 'ou=people,dc=example,dc=org', LDAP_BIND_DN: 'cn=reader,dc=example,dc=org', LDAP_BIND_PASSWORD: 'bind-secret' };
    const { original, printed, reloaded } = roundTrip({ flags: { config: given }, env }, { GHCR_PASSWORD: 'ghcr-secret', LDAP_BIND_PASSWORD: 'bind-secret' });
    for (const secret of ['inline-hunter2', 'ghcr-secret', 'bind-secret']) expect(printed).not.toContain(secret);
    expect(printed).toMatch(/^# Not printed: authRegistries: 1 entry with the password inline/m);
    expect(printed).toMatch(/^# Not printed: ldapBindPassword: given by LDAP_BIND_PASSWORD/m);
    expect(reloaded.credentials.map((c) => c.registry)).toEqual(['ghcr.io']);
    expect(effective({ ...reloaded, credentials: [] })).toEqual(effective({ ...original, credentials: [] }));
  });

  it('never prints AUTH_REGISTRIES from the environment; the same environment loads it again', () => {
    const env = { AUTH_REGISTRIES: 'quay.io:bob:hunter2' };
    const { original, printed, reloaded } = roundTrip({ env }, env);
    expect(printed).not.toContain('hunter2');
    expect(printed).toMatch(/^# Not printed: authRegistries: given by AUTH_REGISTRIES/m);
    expect(effective(reloaded)).toEqual(effective(original));
  });
});
