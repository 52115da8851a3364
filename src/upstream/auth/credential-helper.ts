import { spawn } from 'node:child_process';
import { Secret } from '../../config/secret.js';

/** A username and password ready to send (from the configuration or a helper). */
export interface ResolvedCredential {
  readonly username: string;
  readonly password: Secret;
}

/** Runs `docker-credential-NAME get` for a registry; tests pass their own. */
export type HelperRunner = (helper: string, registry: string) => Promise<ResolvedCredential>;

const TIMEOUT_MS = 15_000;
const MAX_OUTPUT = 64 * 1024;

/** Thrown when a helper fails; its message never holds the helper's output (which may hold the secret). */
export class CredentialHelperError extends Error {
  override readonly name = 'CredentialHelperError';
}

/**
 * The docker-credential-helpers protocol: `docker-credential-NAME get`, the registry on stdin,
 * `{"ServerURL","Username","Secret"}` on stdout. The program is found on PATH and inherits
 * Layover's environment (cloud identities: AWS_*, GOOGLE_APPLICATION_CREDENTIALS, ...).
 */
export const runCredentialHelper: HelperRunner = (helper, registry) =>
  new Promise((resolve, reject) => {
    const program = `docker-credential-${helper}`;
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'ignore'], timeout: TIMEOUT_MS });
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT) child.kill('SIGKILL');
      else chunks.push(chunk);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${registry}\n`);
    child.once('error', (error: NodeJS.ErrnoException) => reject(new CredentialHelperError(`${program}: cannot run it (${error.code ?? error.message})`)));
    child.once('close', (code, signal) => {
      if (code !== 0) return reject(new CredentialHelperError(`${program} get failed (${signal ? `killed by ${signal}` : `exit code ${code}`})`));
      let answer: unknown;
      try {
        answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return reject(new CredentialHelperError(`${program} get printed no JSON object`));
      }
      const { Username: username, Secret: secret } = (answer ?? {}) as Record<string, unknown>;
      if (typeof username !== 'string' || typeof secret !== 'string' || username === '' || secret === '') {
        return reject(new CredentialHelperError(`${program} get answered without Username and Secret`));
      }
      resolve({ username, password: new Secret(secret) });
    });
  });
