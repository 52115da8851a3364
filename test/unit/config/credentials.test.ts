import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HELPER_MAX_AGE_MS, parseCredentials, type RegistryCredential } from '../../../src/config/credentials.js';

const parse = (value: unknown, env: NodeJS.ProcessEnv = {}) => parseCredentials(value, ' ', ':', env);
const ok = (value: unknown, env: NodeJS.ProcessEnv = {}): RegistryCredential[] => {
  const result = parse(value, env);
  if (typeof result === 'string') throw new Error(result);
  return result;
};

describe('parseCredentials', () => {
  it('keeps AUTH_REGISTRIES as the nginx proxies read it', () => {
    const [hub, quay] = ok('auth.docker.io:alice:pa:ss quay.io:443:bob:x');
    expect([hub!.registry, hub!.username, hub!.password.reveal()]).toEqual(['auth.docker.io', 'alice', 'pa:ss']);
    // host:port does not fit the `:` delimiter; the default port is dropped where it does.
    expect(quay!.registry).toBe('quay.io');
    expect(ok('registry.example:443:u:p')[0]!.registry).toBe('registry.example');
  });

  it('maps registry/prefix entries of the config file to accounts', () => {
    const entries = ok([
      { registry: 'ghcr.io', username: 'org', password: 'a' },
      { registry: 'ghcr.io/team/app/', username: 'team', passwordEnv: 'TEAM' },
      { registry: 'r.example:5000/x', username: 'u', password: 'p', realm: 'SSO.other.example' },
    ], { TEAM: 'from-env' });
    expect(entries.map((e) => [e.registry, e.prefix, e.username, e.password.reveal(), e.realm])).toEqual([
      ['ghcr.io', undefined, 'org', 'a', undefined],
      ['ghcr.io', 'team/app', 'team', 'from-env', undefined],
      ['r.example:5000', 'x', 'u', 'p', 'sso.other.example'],
    ]);
  });

  it('reads a GCR JSON key from a file, unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'layover-cred-'));
    const key = '{\n  "type": "service_account",\n  "private_key": "-----BEGIN PRIVATE KEY-----\\nMII..."\n}';
    writeFileSync(join(dir, 'key.json'), `${key}\n`);
    const [gcr] = ok([{ registry: 'gcr.io', username: '_json_key', passwordFile: join(dir, 'key.json') }]);
    expect(gcr!.password.reveal()).toBe(key);
  });

  it('takes credential helpers with a max age', () => {
    const [ecr, gcr] = ok([
      { registry: '123.dkr.ecr.eu-west-1.amazonaws.com', helper: 'ecr-login', maxAge: '6h' },
      { registry: 'gcr.io', helper: 'gcloud' },
    ]);
    expect(ecr!.helper).toEqual({ name: 'ecr-login', maxAgeMs: 6 * 3_600_000 });
    expect(gcr!.helper).toEqual({ name: 'gcloud', maxAgeMs: DEFAULT_HELPER_MAX_AGE_MS });
  });

  it('names what is wrong, never the secret', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[{ registry: 'r.example', helper: '../../bin/sh' }], /entry 1: helper is not a credential helper name/],
      [[{ registry: 'r.example', helper: 'x', password: 'hunter2' }], /takes no username or password/],
      [[{ registry: 'r.example', helper: 'x', maxAge: 'soon' }], /maxAge is not a duration/],
      [[{ registry: 'r.example/UPPER', username: 'u', password: 'hunter2' }], /is not a repository prefix/],
      [[{ registry: 'r.example', username: 'u', password: 'hunter2', realm: 'not a host' }], /realm is not a hostname/],
      [[{ registry: 'r.example', password: 'hunter2' }], /needs username \(or helper\)/],
      ['bad!host:u:hunter2', /registry is not a hostname/],
    ];
    for (const [value, message] of cases) {
      const result = parse(value);
      expect(result).toMatch(message);
      expect(result).not.toContain('hunter2');
    }
    expect(inspect(ok('quay.io:bob:hunter2'), { depth: 5 })).not.toContain('hunter2');
  });
});
