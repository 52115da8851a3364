/**
 * The access probe asks an upstream, without credentials, whether a cached object is public: a Bearer
 * challenge is answered with an anonymous token from the realm it names. That realm is the upstream's
 * to name, so it is fetched under the policy of Layover's own tokens (https only; any realm but the
 * registry's own through the RealmGuard): a realm on a forbidden address is never asked, and the
 * object counts as not readable. Real HTTPS servers on loopback play the registry and the realm.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type HeldBytes, UpstreamProbe } from '../../../src/access/upstream-probe.js';
import type { Digest } from '../../../src/registry/digest.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { UpstreamAuth } from '../../../src/upstream/auth/upstream-auth.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { type LocalHttps, localHttps } from '../upstream/local-https.js';

const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;
const NAME = 'team/app' as RepositoryName;

/** HEADs only here: no sample is ever asked for. */
const NO_HELD_BYTES: HeldBytes = {
  sample: () => Promise.reject(new Error('no sample in this test')),
  fetchStorage: () => Promise.reject(new Error('no storage in this test')),
};

let net: LocalHttps;
beforeEach(async () => {
  net = await localHttps();
});
afterEach(() => net.close());

/** A realm that hands anyone an anonymous token. */
const realm = (): Promise<number> =>
  net.serve((_req: IncomingMessage, res: ServerResponse) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"anonymous-token"}'));

/** A registry that asks for a Bearer token from `realmUrl` and answers 200 to a request that brings one. */
const registry = (realmUrl: () => string): Promise<number> =>
  net.serve((req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.authorization !== 'Bearer anonymous-token') return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${realmUrl()}",service="s"` }).end();
    res.writeHead(200).end();
  });

function probe(allowNetworks: string[]): { probe: UpstreamProbe; warnings: () => unknown[] } {
  const { logger, lines } = captureLogger('debug');
  const auth = new UpstreamAuth({ dispatcher: net.agent, realms: net.realms(allowNetworks), credentials: [], logger });
  return { probe: new UpstreamProbe(net.agent, auth, NO_HELD_BYTES), warnings: () => lines.filter((line) => /token realm/.test(String(line.msg))) };
}

const realmRequests = (): number => net.requests.filter((r) => r.url.startsWith('/token')).length;

it('never asks a realm on a forbidden address: the object counts as not readable, with a warning', async () => {
  const realmPort = await realm();
  const port = await registry(() => `https://auth.example.test:${realmPort}/token`);
  // No REDIRECT_ALLOW_NETWORKS: the realm resolves to loopback, at another port than the registry's.
  const { probe: refusing, warnings } = probe([]);
  const result = await refusing.head(`https://registry.example.test:${port}`, NAME, { kind: 'blob', digest: DIGEST }, { kind: 'anonymous' });
  expect(result).toMatchObject({ status: 401 });
  expect(realmRequests()).toBe(0);
  expect(warnings()).toHaveLength(1);
});

it('never asks a realm that is not https', async () => {
  const realmPort = await realm();
  const port = await registry(() => `http://auth.example.test:${realmPort}/token`);
  const { probe: refusing } = probe(['127.0.0.0/8']);
  expect(await refusing.head(`https://registry.example.test:${port}`, NAME, { kind: 'blob', digest: DIGEST }, { kind: 'anonymous' })).toMatchObject({ status: 401 });
  expect(realmRequests()).toBe(0);
});

it('asks a realm the policy allows, and the object is readable with its token', async () => {
  const realmPort = await realm();
  const port = await registry(() => `https://auth.example.test:${realmPort}/token`);
  const { probe: allowing } = probe(['127.0.0.1']);
  expect(await allowing.head(`https://registry.example.test:${port}`, NAME, { kind: 'blob', digest: DIGEST }, { kind: 'anonymous' })).toEqual({ status: 200 });
  expect(realmRequests()).toBe(1);
});
