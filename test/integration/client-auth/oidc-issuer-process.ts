/**
 * test/fixtures/oidc-issuer.mjs as a child process on loopback (port chosen by the OS), with a
 * certificate from a test CA made with openssl, and an undici Agent that trusts that CA (what
 * Layover's upstream dispatcher is in production). For tests outside a bench sandbox.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { createTestCa } from '../../bench/test-ca.js';

export const OIDC_ISSUER_SCRIPT = fileURLToPath(new URL('../../fixtures/oidc-issuer.mjs', import.meta.url));

export interface SignRequest {
  claims?: Record<string, unknown>;
  /** Sign with a key the JWKS never shows. */
  unpublished?: boolean;
  /** Default claims (iss, iat, exp) to leave out. */
  omit?: string[];
}

export interface OidcIssuer {
  /** `https://127.0.0.1:<port>`. */
  readonly issuer: string;
  /** Trusts the fixture's CA; pass it where Layover would pass its upstream dispatcher. */
  readonly dispatcher: Agent;
  /** Every request the fixture answered (or held), oldest first. */
  requests(): Array<{ method: string; path: string }>;
  sign(body?: SignRequest): Promise<string>;
  /** Publishes a new key instead of the current one; returns its kid. */
  rotate(): Promise<string>;
  /** While on, discovery and JWKS requests get no answer. */
  stall(on: boolean): Promise<void>;
  /** SIGTERM and wait: afterwards the port is closed (the provider is down). */
  stop(): Promise<void>;
  /** stop() and close the dispatcher. */
  close(): Promise<void>;
}

export async function startOidcIssuer(dir: string): Promise<OidcIssuer> {
  const ca = await createTestCa(join(dir, 'oidc-ca'));
  const tls = await ca.issue('oidc-issuer', ['127.0.0.1']);
  const child: ChildProcess = spawn(process.execPath, [OIDC_ISSUER_SCRIPT, '--listen', '127.0.0.1:0', '--cert', tls.certFile, '--key', tls.keyFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, string>> = [];
  let stderr = '';
  let partial = '';
  const ready = new Promise<Record<string, string>>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = (partial + chunk.toString('utf8')).split('\n');
      partial = text.pop() ?? '';
      for (const raw of text) {
        const line = JSON.parse(raw) as Record<string, string>;
        if ('listening' in line) resolve(line);
        else lines.push(line);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('exit', (code) => reject(new Error(`oidc-issuer exited (${code}): ${stderr}`)));
  });
  const { issuer } = await ready;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  const dispatcher = new Agent({ connect: { ca: readFileSync(ca.certFile, 'utf8') } });
  const post = async (path: string, body: unknown): Promise<Record<string, string>> => {
    const res = await request(`${issuer}${path}`, { method: 'POST', body: JSON.stringify(body), dispatcher });
    return (await res.body.json()) as Record<string, string>;
  };
  return {
    issuer: issuer!,
    dispatcher,
    requests: () => lines.map((l) => ({ method: l.method!, path: l.path! })),
    sign: async (body = {}) => (await post('/test/sign', body)).token!,
    rotate: async () => (await post('/test/rotate', {})).kid!,
    stall: async (on) => void (await post('/test/stall', { stall: on })),
    stop,
    async close() {
      await stop();
      await dispatcher.destroy();
    },
  };
}
