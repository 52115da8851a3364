/**
 * Helpers for the upstream-credential tests: the bench with a token server (test/fixtures/
 * token-server.mjs on 127.0.0.5 as auth.registry.test, signing with an RSA certificate from the
 * bench's test CA), a trust directory for clients that talk to Layover and the realm, and the
 * check that no secret ever reaches Layover's log.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { type Bench, type BenchOptions, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { LayoverProcessOptions } from '../../bench/layover-process.js';
import type { Sandbox } from '../../bench/sandbox.js';
import type { TestCa } from '../../bench/test-ca.js';

const run = promisify(execFile);
export const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));
export const REALM_HOST = 'auth.registry.test';
const REALM_ADDRESS = '127.0.0.5';
const ISSUER = 'layover-test-token-issuer';

export interface TokenUser {
  password: string;
  /** Repository prefix ("" for all) -> actions. */
  grants: Record<string, string[]>;
}

export interface TokenLine {
  account: string;
  /** The client's User-Agent: `layover` for Layover's own token requests. */
  agent?: string;
  scopes?: string[];
  access?: Array<{ name: string; actions: string[] }>;
  token?: string;
  rejected?: boolean;
}

export interface TokenBench {
  bench: Bench;
  /** Every request the token server answered so far. */
  tokenRequests(): TokenLine[];
}

/** An RSA key and a certificate for it from the test CA: RS256 needs RSA, the bench's certificates are EC. */
async function signingCertificate(ca: TestCa, dir: string, name: string): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n');
  await run('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-subj', '/CN=layover test token signer', '-out', csr]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', certFile]);
  return { certFile, keyFile };
}

/** Where a token server listens, under which name, and the service its tokens are for. */
export interface TokenServerPlace {
  host: string;
  address: string;
  service: string;
}
const BENCH_REALM: TokenServerPlace = { host: REALM_HOST, address: REALM_ADDRESS, service: INTERCEPTED_HOST };

/**
 * Starts test/fixtures/token-server.mjs at `place` (port 443), its TLS and signing certificates from
 * the test CA; every request it answers is pushed to `lines`. Returns the registry's `auth.token`
 * section for a realm at `realmPath`.
 */
export async function startTokenServer(sandbox: Sandbox, ca: TestCa, users: Record<string, TokenUser>, lines: TokenLine[], place: TokenServerPlace = BENCH_REALM, realmPath = '/token'): Promise<Record<string, unknown>> {
  const tls = await ca.issue(`token-server-${place.address}`, [place.host, place.address]);
  const signing = await signingCertificate(ca, sandbox.dir, `token-signing-${place.address}`);
  const args = [join(FIXTURES, 'token-server.mjs'), '--listen', `${place.address}:443`, '--cert', tls.certFile, '--key', tls.keyFile];
  args.push('--sign-cert', signing.certFile, '--sign-key', signing.keyFile, '--issuer', ISSUER, '--service', place.service, '--users', JSON.stringify(users));
  const child = sandbox.spawn(process.execPath, args);
  let partial = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const text = (partial + chunk.toString('utf8')).split('\n');
      partial = text.pop() ?? '';
      for (const raw of text) {
        const line = JSON.parse(raw) as TokenLine & { listening?: string };
        if (line.listening) resolve();
        else lines.push(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`token server exited (${code}): ${stderr}`)));
  });
  return { token: { realm: `https://${place.host}${realmPath}`, service: place.service, issuer: ISSUER, rootcertbundle: ca.certFile } };
}

/**
 * Layover options with the token server's address allowed: a realm on another host than the
 * registry is reached only at addresses REDIRECT_ALLOW_NETWORKS allows, and the bench's realm is on
 * loopback (127.0.0.5) where a real one would be on a public address.
 */
function allowingRealm(options: LayoverProcessOptions = {}): LayoverProcessOptions {
  const listed = options.env?.REDIRECT_ALLOW_NETWORKS;
  return { ...options, env: { ...options.env, REDIRECT_ALLOW_NETWORKS: listed ? `${listed} ${REALM_ADDRESS}/32` : `${REALM_ADDRESS}/32` } };
}

/** The bench with its registry in token mode; `users` must include the pusher as the first htpasswd user. */
export async function startTokenBench(users: Record<string, TokenUser>, options: BenchOptions): Promise<TokenBench> {
  const lines: TokenLine[] = [];
  const [pusher, pusherUser] = Object.entries(users)[0]!;
  const bench = await startBench({
    ...options,
    ...(options.layover === false ? {} : { layover: allowingRealm(options.layover) }),
    auth: { htpasswd: { [pusher]: pusherUser.password } },
    extraRecords: { [REALM_HOST]: [REALM_ADDRESS] },
    beforeRegistry: async (sandbox, ca) => ({ auth: await startTokenServer(sandbox, ca, users, lines) }),
  });
  // Every Layover the test starts later allows the realm too (the bench's getters stay live).
  const withRealm: Bench = Object.create(bench, { startLayover: { value: (layoverOptions?: LayoverProcessOptions) => bench.startLayover(allowingRealm(layoverOptions)) } });
  return { bench: withRealm, tokenRequests: () => [...lines] };
}

/** A cert dir trusting Layover's CA and the test CA: for a client that also talks to the real realm. */
export function trustLayoverAndRealm(bench: Bench): string {
  const dir = join(bench.sandbox.dir, `trust-both-${Date.now()}`);
  mkdirSync(dir);
  copyFileSync(bench.layover!.caFile, join(dir, 'layover.crt'));
  copyFileSync(bench.ca.certFile, join(dir, 'test-ca.crt'));
  return dir;
}

/** Asserts that none of `secrets` (nor the Basic header made of user:secret) appears in anything Layover logged. */
export function expectNoSecretsInLog(bench: Bench, secrets: Array<string | [user: string, password: string]>): void {
  const layover = bench.layover!;
  const everything = `${JSON.stringify(layover.logs())}\n${layover.output()}`;
  expect(layover.logs().length).toBeGreaterThan(0);
  secrets.forEach((secret, index) => {
    const needles = typeof secret === 'string' ? [secret] : [secret[1], Buffer.from(`${secret[0]}:${secret[1]}`).toString('base64')];
    for (const needle of needles) expect(everything.includes(needle), `Layover's log contains secret number ${index}`).toBe(false);
  });
}
