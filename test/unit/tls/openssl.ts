import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs `openssl verify -x509_strict -CAfile ca <args> leaf`; resolves to its combined output, never rejects. */
export async function opensslVerify(caPem: string, leafPem: string, args: string[] = []): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'layover-openssl-'));
  try {
    await writeFile(join(dir, 'ca.pem'), caPem);
    await writeFile(join(dir, 'leaf.pem'), leafPem);
    const argv = ['verify', '-x509_strict', '-CAfile', join(dir, 'ca.pem'), ...args, join(dir, 'leaf.pem')];
    try {
      const { stdout, stderr } = await execFileAsync('openssl', argv);
      return { ok: true, output: stdout + stderr };
    } catch (err) {
      const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
      return { ok: false, output: stdout + stderr };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
