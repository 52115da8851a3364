import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RegistryCredential } from '../../../src/config/credentials.js';
import { Secret } from '../../../src/config/secret.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { UpstreamAuthError } from '../../../src/upstream/auth/auth-error.js';
import { CredentialHelperError, type HelperRunner } from '../../../src/upstream/auth/credential-helper.js';
import { PLACEHOLDER_TOKEN, UpstreamAuth } from '../../../src/upstream/auth/upstream-auth.js';
import { captureLogger, LEVEL } from '../../helpers/capture-logger.js';
import { type LocalHttps, localHttps } from './local-https.js';

// Real HTTPS servers on loopback play the registry and its token realm; UpstreamAuth talks to them
// through an undici Agent, as it does through Layover's dispatcher.
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const cred = (registry: string, username: string, extra: Partial<RegistryCredential> = {}): RegistryCredential => ({ registry, username, password: new Secret(`${username}-pw`), ...extra });
const repo = (name: string) => name as RepositoryName;

type Log = ReturnType<typeof captureLogger>;
const recordingLog = (): Log => captureLogger('debug');

let net: LocalHttps;
beforeEach(async () => {
  net = await localHttps();
});
afterEach(() => net.close());

/** A token realm: known users get `tok-<n>`, others 401; no credentials: an anonymous token. */
async function realm(users: Record<string, string> = { alice: 'alice-pw', bob: 'bob-pw' }): Promise<number> {
  let n = 0;
  return net.serve((req, res) => {
    const auth = req.headers.authorization;
    if (auth && !Object.entries(users).some(([u, p]) => auth === basic(u, p))) return void res.writeHead(401).end('{}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok-${++n}`, expires_in: 300 }));
  });
}

/** A registry that answers /v2/ without credentials with `challenge` (or 200 when null), everything else 200. */
function registry(challenge: (() => string) | null): Promise<number> {
  return net.serve((req: IncomingMessage, res: ServerResponse) => {
    if (challenge && !req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': challenge() }).end();
    res.writeHead(200).end('{}');
  });
}

// Realms on another host or port than their registry are reached through the guard; on loopback
// only because these tests allow it, as REDIRECT_ALLOW_NETWORKS=127.0.0.1 would.
const make = (
  credentials: RegistryCredential[],
  extra: { runHelper?: HelperRunner; log?: Log; allowNetworks?: string[]; isRegistry?: (hostname: string) => boolean; wildcardOnly?: (hostname: string) => boolean } = {},
) =>
  new UpstreamAuth({
    dispatcher: net.agent,
    realms: net.realms(extra.allowNetworks ?? ['127.0.0.1']),
    credentials,
    logger: (extra.log ?? recordingLog()).logger,
    ...(extra.runHelper ? { runHelper: extra.runHelper } : {}),
    ...(extra.isRegistry ? { isRegistry: extra.isRegistry } : {}),
    ...(extra.wildcardOnly ? { wildcardOnly: extra.wildcardOnly } : {}),
  });

const tokenRequests = () => net.requests.filter((r) => r.url.startsWith('/token'));

describe('UpstreamAuth', () => {
  it("leaves a client's own credentials alone, without any request of its own", async () => {
    const port = await registry(() => 'Basic realm="r"');
    const origin = `https://registry.example.test:${port}`;
    const auth = make([cred(`registry.example.test:${port}`, 'alice')]);
    expect(auth.concerns(origin)).toBe(true);
    const grant = await auth.authorize(origin, auth.for(repo('a')), basic('bob', 'x'));
    expect(grant).toMatchObject({ clientOwn: true, dropClientHeader: false });
    expect(grant.header).toBeUndefined();
    expect(net.requests).toEqual([]);
    expect(make([cred('other.example', 'alice')]).concerns(origin)).toBe(false);
  });

  it('injects Basic credentials when the client sent none (empty Basic and the placeholder count as none)', async () => {
    const port = await registry(() => 'Basic realm="registry"');
    const origin = `https://registry.example.test:${port}`;
    const auth = make([cred(`registry.example.test:${port}`, 'alice')]);
    for (const client of [undefined, 'Basic Og==', `Bearer ${PLACEHOLDER_TOKEN}`]) {
      const grant = await auth.authorize(origin, auth.for(repo('team/app')), client);
      expect(grant).toMatchObject({ header: basic('alice', 'alice-pw'), dropClientHeader: client !== undefined, clientOwn: false, credential: `alice@registry.example.test:${port}` });
    }
    // The ping is never authenticated: clients must see the challenge.
    expect(await auth.authorize(origin, auth.forPing(), undefined)).toMatchObject({ passChallenge: true, clientOwn: false });
    expect(net.requests.filter((r) => r.url === '/v2/')).toHaveLength(1); // discovered once
  });

  it('fetches one token per scope and account, with the credential, from a realm on the same domain', async () => {
    const realmPort = await realm();
    const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="registry.example.test"`);
    const origin = `https://registry.example.test:${port}`;
    const auth = make([cred(`registry.example.test:${port}`, 'alice')]);
    const grants = await Promise.all(Array.from({ length: 10 }, () => auth.authorize(origin, auth.for(repo('team/app')), undefined)));
    expect(new Set(grants.map((g) => g.header))).toEqual(new Set(['Bearer tok-1']));
    expect(tokenRequests()).toHaveLength(1);
    const [first] = tokenRequests();
    expect(first!.authorization).toBe(basic('alice', 'alice-pw'));
    expect(new URL(first!.url, 'https://x').searchParams.get('scope')).toBe('repository:team/app:pull');
    expect(new URL(first!.url, 'https://x').searchParams.get('service')).toBe('registry.example.test');

    const push = await auth.authorize(origin, auth.for(repo('team/app'), 'push'), undefined);
    expect(push.header).toBe('Bearer tok-2');
    expect(new URL(tokenRequests()[1]!.url, 'https://x').searchParams.get('scope')).toBe('repository:team/app:pull,push');
  });

  it('never sends a credential to a realm on another domain unless the entry names it', async () => {
    const realmPort = await realm();
    const port = await registry(() => `Bearer realm="https://realm.elsewhere.test:${realmPort}/token",service="s"`);
    const origin = `https://registry.example.test:${port}`;
    const log = recordingLog();
    const auth = make([cred(`registry.example.test:${port}`, 'alice')], { log });
    const grant = await auth.authorize(origin, auth.for(repo('a')), undefined);
    expect(grant.header).toBe('Bearer tok-1');
    expect(grant.credential).toBeUndefined();
    expect(tokenRequests()[0]!.authorization).toBeUndefined();
    await auth.authorize(origin, auth.for(repo('b')), undefined);
    expect(log.lines.filter((l) => l.level === LEVEL.warn)).toHaveLength(1);
    expect(JSON.stringify(log.lines)).not.toContain('alice-pw');

    const allowed = make([cred(`registry.example.test:${port}`, 'alice', { realm: 'realm.elsewhere.test' })]);
    await allowed.authorize(origin, allowed.for(repo('a')), undefined);
    expect(tokenRequests()[2]!.authorization).toBe(basic('alice', 'alice-pw'));
  });

  it('uses an entry keyed by the realm host, as nginx-proxy users write auth.docker.io', async () => {
    const realmPort = await realm();
    const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`);
    const auth = make([cred(`auth.example.test:${realmPort}`, 'bob')]);
    const origin = `https://registry.example.test:${port}`;
    expect(auth.concerns(origin)).toBe(true);
    expect((await auth.authorize(origin, auth.for(repo('x')), undefined)).credential).toBe(`bob@auth.example.test:${realmPort}`);
    expect(tokenRequests()[0]!.authorization).toBe(basic('bob', 'bob-pw'));
  });

  it('after a 401: fetches a fresh token, re-learns a changed scheme, and does not retry a static Basic credential', async () => {
    const realmPort = await realm();
    let scheme = 'none';
    const port = await registry(() => (scheme === 'basic' ? 'Basic realm="r"' : `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`));
    const origin = `https://registry.example.test:${port}`;
    const auth = make([cred(`registry.example.test:${port}`, 'alice')]);
    const first = await auth.authorize(origin, auth.for(repo('a')), undefined);
    expect(auth.rejected(origin, first, undefined)).toBe(true);
    expect((await auth.authorize(origin, auth.for(repo('a')), undefined)).header).toBe('Bearer tok-2');

    scheme = 'basic';
    const stale = await auth.authorize(origin, auth.for(repo('a')), undefined);
    expect(auth.rejected(origin, stale, 'Basic realm="r"')).toBe(true);
    const now = await auth.authorize(origin, auth.for(repo('a')), undefined);
    expect(now.header).toBe(basic('alice', 'alice-pw'));
    expect(auth.rejected(origin, now, 'Basic realm="r"')).toBe(false);
    expect(auth.rejected(origin, { dropClientHeader: false, clientOwn: true, challenge: null }, 'Basic realm="r"')).toBe(false);
  });

  it('asks a credential helper again when the token endpoint refuses its answer, and reports a failing helper', async () => {
    const realmPort = await realm({ AWS: 'fresh' });
    const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`);
    const origin = `https://registry.example.test:${port}`;
    let calls = 0;
    let broken = false;
    const runHelper: HelperRunner = async () => {
      calls++;
      if (broken) throw new CredentialHelperError('docker-credential-ecr-login get failed (exit code 1)');
      return { username: 'AWS', password: new Secret(calls === 1 ? 'expired' : 'fresh') };
    };
    const entry = cred(`registry.example.test:${port}`, '', { helper: { name: 'ecr-login', maxAgeMs: 3_600_000 } });
    const auth = make([entry], { runHelper });
    expect((await auth.authorize(origin, auth.for(repo('a')), undefined)).header).toBe('Bearer tok-1');
    expect(calls).toBe(2);
    expect(tokenRequests().map((r) => r.authorization)).toEqual([basic('AWS', 'expired'), basic('AWS', 'fresh')]);

    broken = true;
    const failing = make([entry], { runHelper });
    const error = await failing.authorize(origin, failing.for(repo('a')), undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamAuthError);
    expect(error).toMatchObject({ kind: 'helper', message: expect.stringContaining(`registry.example.test:${port}`) });
  });

  it('reports a refused static credential and an unreachable realm apart', async () => {
    const realmPort = await realm();
    const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`);
    const origin = `https://registry.example.test:${port}`;
    const wrong = make([{ ...cred(`registry.example.test:${port}`, 'alice'), password: new Secret('nope') }]);
    await expect(wrong.authorize(origin, wrong.for(repo('a')), undefined)).rejects.toMatchObject({ kind: 'rejected', status: 401 });
    expect(tokenRequests()).toHaveLength(1); // static: no second try

    const gone = await registry(() => 'Bearer realm="https://auth.example.test:1/token",service="s"');
    const auth = make([cred(`registry.example.test:${gone}`, 'alice')]);
    await expect(auth.authorize(`https://registry.example.test:${gone}`, auth.for(repo('a')), undefined)).rejects.toMatchObject({ kind: 'unreachable' });
  });

  it("serves Layover's token endpoint: the placeholder for clients without credentials, the real realm for the others", async () => {
    const realmPort = await realm();
    const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`);
    const origin = `https://registry.example.test:${port}`;
    const auth = make([cred(`registry.example.test:${port}`, 'alice')]);
    const placeholder = await auth.tokenEndpoint(origin, { method: 'GET', query: 'service=s&scope=repository:a:pull' });
    expect(placeholder.status).toBe(200);
    expect(JSON.parse(String(placeholder.body))).toMatchObject({ token: PLACEHOLDER_TOKEN });
    expect(tokenRequests()).toEqual([]);

    const relayed = await auth.tokenEndpoint(origin, { method: 'GET', query: 'service=s&scope=repository:a:pull', authorization: basic('bob', 'bob-pw') });
    expect(JSON.parse(String(relayed.body))).toMatchObject({ token: 'tok-1' });
    expect(tokenRequests()[0]).toMatchObject({ host: 'auth.example.test', authorization: basic('bob', 'bob-pw'), url: '/token?service=s&scope=repository%3Aa%3Apull' });
    const refused = await auth.tokenEndpoint(origin, { method: 'GET', query: '', authorization: basic('bob', 'wrong') });
    expect(refused.status).toBe(401);

    const { Readable } = await import('node:stream');
    await auth.tokenEndpoint(origin, { method: 'POST', query: '', contentType: 'application/x-www-form-urlencoded', body: Readable.from(['grant_type=password&username=bob']) });
    expect(tokenRequests().at(-1)).toMatchObject({ method: 'POST', body: 'grant_type=password&username=bob' });
  });

  it('points Bearer realms at its own endpoint and leaves other challenges as they are', () => {
    const auth = make([]);
    expect(auth.rewriteChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a:pull",error="insufficient_scope"', 'https://docker.io')).toBe(
      'Bearer realm="https://docker.io/_layover/token",service="registry.docker.io",scope="repository:a:pull",error="insufficient_scope"',
    );
    expect(auth.rewriteChallenges(['Basic realm="Registry Realm"'], 'https://r')).toBe('Basic realm="Registry Realm"');
    // Several challenges stay several header values, one and two headers alike (Docker reads one per value).
    for (const sent of [['Basic realm="Registry Realm"', 'Bearer realm="https://auth.example/token",service="s"'], 'Basic realm="Registry Realm", Bearer realm="https://auth.example/token",service="s"']) {
      expect(auth.rewriteChallenges(sent, 'https://r')).toEqual(['Basic realm="Registry Realm"', 'Bearer realm="https://r/_layover/token",service="s"']);
    }
  });

  it('refuses a realm on a forbidden address, for its own tokens and for the relay, with a warning and nothing sent', async () => {
    const realmPort = await realm();
    const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`);
    const origin = `https://registry.example.test:${port}`;
    const log = recordingLog();
    // No REDIRECT_ALLOW_NETWORKS: the realm resolves to loopback, another port than the registry's.
    const auth = make([cred(`registry.example.test:${port}`, 'alice')], { allowNetworks: [], log });
    const own = await auth.authorize(origin, auth.for(repo('a')), undefined).catch((e: unknown) => e);
    expect(own).toMatchObject({ kind: 'refused', message: expect.stringContaining('loopback') });
    const relayed = await auth.tokenEndpoint(origin, { method: 'GET', query: 'service=s', authorization: basic('bob', 'bob-pw') }).catch((e: unknown) => e);
    expect(relayed).toMatchObject({ kind: 'refused' });
    expect(tokenRequests()).toEqual([]);
    const warnings = log.lines.filter((l) => l.level === LEVEL.warn && /token realm/.test(String(l.msg)));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ registry: `registry.example.test:${port}`, realm: `auth.example.test:${realmPort}` });
    expect(JSON.stringify(log.lines)).not.toContain('alice-pw');
    expect(JSON.stringify(log.lines)).not.toContain(basic('bob', 'bob-pw').slice(6));
  });

  it('never lends a proxied registry\'s credential to another registry that names its realm', async () => {
    // The victim registry serves its own realm; its credential is keyed by it.
    const victim = await realm();
    // Another registry on the same registrable domain (under an intercepted wildcard, say) names that realm.
    const other = await registry(() => `Bearer realm="https://registry.example.test:${victim}/token",service="registry.example.test"`);
    const intercepted = new Set(['registry.example.test', 'auth.example.test']);
    const auth = make([cred(`registry.example.test:${victim}`, 'alice')], { isRegistry: (hostname) => intercepted.has(hostname) });
    const grant = await auth.authorize(`https://auth.example.test:${other}`, auth.for(repo('victim/app')), undefined);
    expect(grant.credential).toBeUndefined();
    expect(tokenRequests().map((r) => r.authorization)).toEqual([undefined]);
  });

  it('lends an auth host\'s entry only to registries named in REGISTRIES, not to any name under a wildcard', async () => {
    // GitLab's way: the entry is keyed by the auth host, which is no registry Layover proxies.
    const authHost = await realm();
    const challenge = () => `Bearer realm="https://auth.example.test:${authHost}/token",service="registry"`;
    const named = await registry(challenge);
    const underWildcard = await registry(challenge);
    const intercepted = new HostnameSet(['registry.example.test', '*.registry.example.test']);
    const auth = make([cred(`auth.example.test:${authHost}`, 'alice')], { isRegistry: (h) => intercepted.has(h), wildcardOnly: (h) => intercepted.has(h) && !intercepted.named(h) });
    expect((await auth.authorize(`https://registry.example.test:${named}`, auth.for(repo('team/app')), undefined)).credential).toBe(`alice@auth.example.test:${authHost}`);
    // An attacker's host under the wildcard names the same realm: it gets an anonymous token, not alice's.
    const grant = await auth.authorize(`https://other.registry.example.test:${underWildcard}`, auth.for(repo('team/app')), undefined);
    expect(grant.credential).toBeUndefined();
    expect(tokenRequests().map((r) => r.authorization === undefined)).toEqual([false, true]);
  });

  it('a realm that answers JSON that is no object (null, a list) is an invalid answer, not a crash', async () => {
    for (const answer of ['null', '[]', '7']) {
      const realmPort = await net.serve((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(answer));
      const port = await registry(() => `Bearer realm="https://auth.example.test:${realmPort}/token",service="s"`);
      const auth = make([cred(`registry.example.test:${port}`, 'alice')]);
      await expect(auth.authorize(`https://registry.example.test:${port}`, auth.for(repo('a')), undefined), answer).rejects.toMatchObject({ kind: 'invalid' });
    }
  });

  it('refuses a realm that is not https, and fetches from the registry itself and from a configured realm', async () => {
    const plain = await registry(() => 'Bearer realm="http://auth.example.test:80/token",service="s"');
    const open = make([cred(`registry.example.test:${plain}`, 'alice')], { allowNetworks: ['127.0.0.0/8'] });
    await expect(open.authorize(`https://registry.example.test:${plain}`, open.for(repo('a')), undefined)).rejects.toMatchObject({ kind: 'refused', message: expect.stringContaining('not https') });

    // The registry's own origin is reached as the registry is, whatever its address.
    let port = 0;
    port = await net.serve((req, res) => {
      if (req.url?.startsWith('/token')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"own-origin"}');
      if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': `Bearer realm="https://registry.example.test:${port}/token",service="s"` }).end();
      res.writeHead(200).end('{}');
    });
    const self = make([cred(`registry.example.test:${port}`, 'alice')], { allowNetworks: [] });
    expect((await self.authorize(`https://registry.example.test:${port}`, self.for(repo('a')), undefined)).header).toBe('Bearer own-origin');

    // Not its host at another port but 443 (a realm on 443 beside a registry on 5050 is reached as the
    // registry is: test/integration/auth/realm-on-another-port-of-the-registry-host.test.ts), or a
    // registry could have Layover read any service beside it.
    const sameHostRealm = await realm();
    const ported = await registry(() => `Bearer realm="https://registry.example.test:${sameHostRealm}/jwt/auth",service="s"`);
    const sameHost = make([cred(`registry.example.test:${ported}`, 'alice')], { allowNetworks: [] });
    await expect(sameHost.authorize(`https://registry.example.test:${ported}`, sameHost.for(repo('a')), undefined)).rejects.toMatchObject({ kind: 'refused' });

    // A realm the operator configured for the credential (`realm`) is vouched for.
    const realmPort = await realm();
    const other = await registry(() => `Bearer realm="https://realm.elsewhere.test:${realmPort}/token",service="s"`);
    const configured = make([cred(`registry.example.test:${other}`, 'alice', { realm: 'realm.elsewhere.test' })], { allowNetworks: [] });
    expect((await configured.authorize(`https://registry.example.test:${other}`, configured.for(repo('a')), undefined)).header).toBe('Bearer tok-1');
  });
});
