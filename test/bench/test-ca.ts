/**
 * A test CA made with the `openssl` program (deliberately not Layover's own CA code, so a bug there
 * cannot hide itself): it signs the upstream registry's certificate, and Layover trusts it through
 * `--upstream-ca`. Keys are EC P-256, certificates valid for two days.
 *
 *   const ca = await createTestCa(dir);
 *   const leaf = await ca.issue('registry', ['registry.test', 'registry-direct.test']);
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
}

export interface TestCa {
  /** The CA certificate (PEM). */
  readonly certFile: string;
  readonly keyFile: string;
  /**
   * A directory holding only `ca.crt`: the form skopeo's `--src-cert-dir`/`--dest-cert-dir` and
   * containers' certs.d want (a stray `.key` there would be taken for a client key).
   */
  readonly trustDir: string;
  /** A server certificate for `names` (DNS names or IP addresses), signed by this CA. */
  issue(label: string, names: string[]): Promise<IssuedCertificate>;
}

const OPENSSL_CONFIG = (cn: string, extensions: string[]): string =>
  ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${cn}`, '[ext]', ...extensions, ''].join('\n');

export async function createTestCa(dir: string): Promise<TestCa> {
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  await openssl(dir, 'ca', 'Layover test CA', ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectKeyIdentifier = hash'], []);
  const trustDir = join(dir, 'trust');
  mkdirSync(trustDir);
  copyFileSync(certFile, join(trustDir, 'ca.crt'));

  return {
    certFile,
    keyFile,
    trustDir,
    async issue(label, names) {
      const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      await openssl(
        dir,
        label,
        names[0] ?? label,
        [
          'basicConstraints = critical,CA:FALSE',
          'keyUsage = critical,digitalSignature',
          'extendedKeyUsage = serverAuth',
          `subjectAltName = ${san}`,
          'authorityKeyIdentifier = keyid',
        ],
        ['-CA', certFile, '-CAkey', keyFile],
      );
      return { certFile: join(dir, `${label}.crt`), keyFile: join(dir, `${label}.key`) };
    },
  };
}

async function openssl(dir: string, label: string, cn: string, extensions: string[], signer: string[]): Promise<void> {
  const config = join(dir, `${label}.cnf`);
  writeFileSync(config, OPENSSL_CONFIG(cn, extensions));
  await run('openssl', [
    'req', '-x509', '-new', '-config', config, '-extensions', 'ext',
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-keyout', join(dir, `${label}.key`), '-out', join(dir, `${label}.crt`), ...signer,
  ]);
}
