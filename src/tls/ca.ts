import { X509Certificate, createHash, createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { children, contentOf } from './certificate-der.js';
import { writeFileDurably } from './durable-file.js';
import { LeafTemplate, subjectPublicKeyBits } from './leaf-template.js';

const KEY_FILE = 'ca.key';
const CERT_FILE = 'ca.crt';
/** A 10-year root outlives 2048-bit guidance (NIST: until 2030); signing a leaf with 3072 bits still costs ~2 ms. */
const CA_KEY_BITS = 3072;
/**
 * Leaves certify an ECDSA P-256 key: every handshake signs with it, and a P-256 signature costs the
 * server a few percent of an RSA-2048 one (the key is made at each start in about a millisecond
 * instead of 50-200). Container clients, curl and browsers all take it under an RSA root.
 */
const LEAF_KEY_CURVE = 'prime256v1';
/** How long to wait for another process that is creating the CA in the same directory. */
const CONCURRENT_CREATE_WAIT_MS = 10_000;

const generateKeyPairAsync = promisify(generateKeyPair);

/** The one key pair all leaves of a process share: minting then costs a signature, not a key generation. */
export interface LeafKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly privateKeyPem: string;
}

export interface CertificateAuthority {
  /** The CA certificate (served at /ca.crt, printed by `layover ca`). */
  readonly certPem: string;
  /** As node:crypto `X509Certificate.fingerprint256` (colon-separated upper-case hex). */
  readonly fingerprint256: string;
  // The fields below exist for leaf minting inside src/tls.
  readonly privateKey: KeyObject;
  /** The CA's key identifier: the leaves' authorityKeyIdentifier. */
  readonly subjectKeyIdentifier: Buffer;
  readonly leafKey: LeafKeyPair;
  /** What every leaf of this CA and leaf key has in common, encoded once. */
  readonly leafTemplate: LeafTemplate;
}

interface CaFiles {
  key: string | undefined;
  cert: string | undefined;
}

/**
 * Loads the CA kept in `dir`, or creates it on first start. A directory holding only one
 * of the two files, or files that do not parse or do not match, is an error: silently
 * making a new CA would make every node that trusts the old one reject Layover.
 */
export async function loadOrCreateCa(dir: string): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const made = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (made !== undefined) await chmod(dir, 0o700);

  let files = await readCaFiles(dir);
  let created = false;
  if (files.key === undefined && files.cert === undefined) {
    created = await createCa(dir);
    files = created ? await readCaFiles(dir) : await waitForOtherCreator(dir);
  }
  const leafKey = await generateLeafKey();
  return { ca: parseCa(dir, files, leafKey), created };
}

/** Returns false when another process published its key first. */
async function createCa(dir: string): Promise<boolean> {
  // node-forge builds the CA certificate: loaded only for this, once per CA, not at every start.
  const { buildCaCertificate } = await import('./ca-certificate.js');
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: CA_KEY_BITS });
  // A random suffix so that two installations' roots are told apart in trust stores.
  const commonName = `Layover CA ${randomBytes(4).toString('hex')}`;
  const certPem = buildCaCertificate({ privateKey, publicKey, commonName });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // Key first: a crash in between leaves a key without a certificate, which loading
  // reports; the reverse order could publish a certificate whose key never existed.
  if (!(await writeFileDurably(join(dir, KEY_FILE), keyPem, 0o600))) return false;
  await writeFileDurably(join(dir, CERT_FILE), certPem, 0o644);
  return true;
}

async function waitForOtherCreator(dir: string): Promise<CaFiles> {
  const deadline = Date.now() + CONCURRENT_CREATE_WAIT_MS;
  for (;;) {
    const files = await readCaFiles(dir);
    if (files.cert !== undefined || Date.now() > deadline) return files;
    await sleep(50);
  }
}

async function readCaFiles(dir: string): Promise<CaFiles> {
  const [key, cert] = await Promise.all([readOptional(join(dir, KEY_FILE)), readOptional(join(dir, CERT_FILE))]);
  return { key, cert };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}`, { cause: err });
  }
}

function parseCa(dir: string, files: CaFiles, leafKey: LeafKeyPair): CertificateAuthority {
  const keyPath = join(dir, KEY_FILE);
  const certPath = join(dir, CERT_FILE);
  if (files.key === undefined || files.cert === undefined) {
    const [present, missing] = files.key === undefined ? [certPath, keyPath] : [keyPath, certPath];
    throw new Error(
      `The Layover CA in ${dir} is half-written: ${present} exists but ${missing} does not ` +
        `(an interrupted first start, or a file removed by hand). Layover will not create a new CA over it, ` +
        `because nodes that trust the existing one would reject every certificate. Restore ${missing} from ` +
        `a backup, or remove ${dir} to create a new CA and distribute its ca.crt again.`,
    );
  }
  const privateKey = parseOrExplain(keyPath, 'a PEM private key', () => createPrivateKey(files.key!));
  const x509 = parseOrExplain(certPath, 'a PEM certificate', () => new X509Certificate(files.cert!));
  if (x509.publicKey.asymmetricKeyType !== 'rsa') throw new Error(`${certPath}: cannot parse the CA file as an RSA certificate (its key is ${x509.publicKey.asymmetricKeyType})`);
  if (privateKey.asymmetricKeyType !== 'rsa') {
    throw new Error(`${keyPath}: the CA key must be RSA (node-forge builds RSA certificates only), got ${privateKey.asymmetricKeyType}`);
  }
  if (!x509.ca) throw new Error(`${certPath}: not a CA certificate (basicConstraints CA:TRUE is missing)`);
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`${keyPath} does not belong to ${certPath}: the CA directory mixes files of two CAs`);
  }
  if (new Date(x509.validTo).getTime() <= Date.now()) {
    throw new Error(`${certPath}: the CA expired on ${x509.validTo}; remove ${dir} to create a new one`);
  }
  const subjectKeyIdentifier = parseOrExplain(certPath, 'an X.509 v3 certificate', () => subjectKeyIdentifierOf(x509));
  return {
    certPem: files.cert,
    fingerprint256: x509.fingerprint256,
    privateKey,
    subjectKeyIdentifier,
    leafKey,
    leafTemplate: new LeafTemplate(files.cert, subjectKeyIdentifier, leafKey.publicKey),
  };
}

function parseOrExplain<T>(path: string, expected: string, parse: () => T): T {
  try {
    return parse();
  } catch (cause) {
    throw new Error(`${path}: cannot parse the CA file as ${expected} (truncated or edited?)`, { cause });
  }
}

/** subjectKeyIdentifier's OID (2.5.29.14) as DER. */
const SKI_OID = Buffer.from('0603551d0e', 'hex');

/** The certificate's own SKI when present, else RFC 5280's method 1 (SHA-1 of the subjectPublicKey bits). */
function subjectKeyIdentifierOf(x509: X509Certificate): Buffer {
  // TBSCertificate: ... then [3] extensions, each a SEQUENCE { id, critical?, OCTET STRING { value } }.
  const extensions = children(children(x509.raw)[0]!).find((field) => field[0] === 0xa3);
  for (const extension of extensions ? children(children(extensions)[0]!) : []) {
    const parts = children(extension);
    if (!parts[0]!.equals(SKI_OID)) continue;
    // The extension's value is an OCTET STRING holding the key identifier's OCTET STRING.
    return Buffer.from(contentOf(contentOf(parts.at(-1)!)));
  }
  return createHash('sha1').update(subjectPublicKeyBits(x509.publicKey)).digest();
}

async function generateLeafKey(): Promise<LeafKeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: LEAF_KEY_CURVE });
  return { privateKey, publicKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
