import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { realmHiddenByDns } from '../../../src/upstream/auth/registry-hosts.js';
import { UpstreamAuth } from '../../../src/upstream/auth/upstream-auth.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { localHttps } from './local-https.js';

const machine = { advertise: () => ['127.0.0.1'], upstreamDns: () => [{ host: '127.0.0.1', port: 9 }], ownNetworks: () => ['127.0.0.0/8'] };
const config = loadConfig({ env: { REGISTRIES: 'gitlab.example:5050 registry.example *.corp.example:5000' }, machine });
const domain = { domain: 'docker.example.com', pathPrefix: '', registry: 'registry.example', upstreamPrefix: '' };
const hidden = realmHiddenByDns({ ...config, registries: [...config.registries, domain.domain], customDomains: [domain] as never });

describe('realmHiddenByDns', () => {
  it('hides a name Layover answers in DNS at a port REGISTRIES does not give it', () => {
    expect(hidden('gitlab.example', null)).toBe(true);
    expect(hidden('gitlab.example', 8443)).toBe(true);
    expect(hidden('registry.example', 8443)).toBe(true);
    expect(hidden('team.corp.example', null)).toBe(true);
  });

  it('does not hide a served port, a name Layover does not answer, or its own names', () => {
    expect(hidden('gitlab.example', 5050)).toBe(false);
    expect(hidden('registry.example', null)).toBe(false);
    expect(hidden('team.corp.example', 5000)).toBe(false);
    expect(hidden('auth.gitlab-other.example', null)).toBe(false);
    // Docker Hub's names are answered at 443, where Layover serves them.
    expect(hidden('auth.docker.io', null)).toBe(false);
    expect(hidden('docker.proxy', 8443)).toBe(false);
    expect(hidden('docker.example.com', 8443)).toBe(false);
  });
});

describe('UpstreamAuth.namesHiddenRealm', () => {
  it('finds an https Bearer realm on the registry\'s own host at 443, hidden by DNS, among the challenges, and nothing else', async () => {
    const net = await localHttps();
    try {
      const auth = new UpstreamAuth({ dispatcher: net.agent, realms: net.realms([]), credentials: [], logger: captureLogger('debug').logger, realmHidden: hidden });
      const gitlab = 'https://gitlab.example:5050';
      expect(auth.namesHiddenRealm(gitlab, 'Bearer realm="https://gitlab.example/jwt/auth",service="container_registry"')).toBe(true);
      expect(auth.namesHiddenRealm(gitlab, ['Basic realm="x"', 'Bearer realm="https://GITLAB.example:443/jwt/auth"'])).toBe(true);
      // Served there, or another port of the host (a realm Layover would not reach without the guard).
      expect(auth.namesHiddenRealm(gitlab, 'Bearer realm="https://gitlab.example:5050/jwt/auth"')).toBe(false);
      expect(auth.namesHiddenRealm(gitlab, 'Bearer realm="https://gitlab.example:8443/jwt/auth"')).toBe(false);
      // Another host, hidden or not, is left to the client: Layover might not be let reach it.
      expect(auth.namesHiddenRealm('https://team.corp.example:5000', 'Bearer realm="https://sso.corp.example/token"')).toBe(false);
      expect(auth.namesHiddenRealm(gitlab, 'Bearer realm="https://auth.gitlab-other.example/jwt/auth"')).toBe(false);
      // Layover fetches no plain-http realm, so it has none to relay.
      expect(auth.namesHiddenRealm(gitlab, 'Bearer realm="http://gitlab.example/jwt/auth"')).toBe(false);
      expect(auth.namesHiddenRealm(gitlab, 'Basic realm="https://gitlab.example/"')).toBe(false);
      expect(auth.namesHiddenRealm(gitlab, 'Bearer realm="not a url"')).toBe(false);
    } finally {
      await net.close();
    }
  });
});
