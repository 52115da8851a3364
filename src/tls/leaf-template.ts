import { X509Certificate, createHash, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { TAG, children, oid, sequence, time, tlv } from './certificate-der.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Tolerates clients whose clocks run behind ours. */
const BACKDATE_MS = DAY_MS;
/** notBefore..notAfter stays within 397 days, the most Apple and browsers accept for a leaf. */
const MAX_VALIDITY_MS = 397 * DAY_MS;

const SHA256_WITH_RSA = sequence(oid('1.2.840.113549.1.1.11'), tlv(0x05));
const CRITICAL = tlv(TAG.boolean, Buffer.of(0xff));
const extension = (id: Buffer, critical: boolean, value: Buffer): Buffer =>
  sequence(id, ...(critical ? [CRITICAL] : []), tlv(TAG.octetString, value));
const SUBJECT_ALT_NAME = oid('2.5.29.17');
const COMMON_NAME = oid('2.5.4.3');

/**
 * An address as the 4 or 16 bytes of an iPAddress name (an IPv6 address ending in dotted IPv4
 * included); anything isIP refuses, or a zone index, which a certificate cannot name, throws.
 */
export function ipBytes(ip: string): Buffer {
  const family = isIP(ip);
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  if (family !== 6 || ip.includes('%')) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
  let text = ip;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const [a, b, c, d] = text.slice(lastColon + 1).split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const [head, tail] = text.split('::');
  const all = tail === undefined ? groups(head!) : [...groups(head!), ...Array<string>(8 - groups(head!).length - groups(tail).length).fill('0'), ...groups(tail)];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/** The subjectPublicKey bits of an SPKI: the PKCS#1 key for RSA, the uncompressed point for ECDSA. */
export function subjectPublicKeyBits(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'rsa') return key.export({ type: 'pkcs1', format: 'der' });
  if (key.asymmetricKeyType === 'ec') {
    const { x, y } = key.export({ format: 'jwk' });
    return Buffer.concat([Buffer.of(0x04), Buffer.from(x!, 'base64url'), Buffer.from(y!, 'base64url')]);
  }
  throw new Error(`leaf keys are RSA or ECDSA, not ${key.asymmetricKeyType}`);
}

/** keyUsage: digitalSignature, and keyEncipherment for an RSA key (RFC 5280 4.2.1.3; TLS 1.2 RSA key exchange). */
function keyUsageFor(key: KeyObject): Buffer {
  return tlv(TAG.bitString, key.asymmetricKeyType === 'rsa' ? Buffer.of(0x05, 0xa0) : Buffer.of(0x07, 0x80));
}

/** What varies between two leaves; everything else is the same for every leaf of a process. */
export interface LeafFields {
  /** The subject's CN, or none (an empty subject; the SAN is then critical, RFC 5280 4.2.1.6). */
  commonName: string | null;
  dnsName: string;
  /** Addresses (IPv4 or IPv6 literals) the certificate also covers. */
  ips?: readonly string[];
  /** 16 bytes, positive and minimal as a DER INTEGER (`randomSerial` of ./new-certificate.ts). */
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
}

/**
 * The parts of a leaf certificate that do not depend on the name, encoded once per process: the
 * issuer (the CA certificate's subject, byte for byte, as Go's chain building compares it), the
 * shared leaf key's SubjectPublicKeyInfo and its key identifier, the CA's key identifier, and the
 * fixed extensions. A mint then encodes only the serial, validity, subject and SAN, and signs.
 * The result is the certificate forge built from the same fields (a unit test compares the bytes).
 */
export class LeafTemplate {
  readonly #head: Buffer;
  readonly #issuer: Buffer;
  readonly #publicKey: Buffer;
  readonly #fixedExtensions: Buffer;
  readonly #keyIdentifiers: Buffer;
  readonly #caNotBefore: number;
  readonly #caNotAfter: number;

  /** `caSubjectKeyIdentifier`: the leaves' authorityKeyIdentifier; `leafPublicKey`: the key every leaf certifies. */
  constructor(caCertPem: string, caSubjectKeyIdentifier: Buffer, leafPublicKey: KeyObject) {
    const ca = new X509Certificate(caCertPem);
    this.#caNotBefore = Date.parse(ca.validFrom);
    this.#caNotAfter = Date.parse(ca.validTo);
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
    const tbs = children(ca.raw)[0]!;
    const fields = children(tbs);
    if (fields.length < 6 || fields[0]![0] !== 0xa0) throw new Error('the CA certificate is not an X.509 v3 certificate');
    this.#issuer = fields[5]!;
    this.#head = tlv(0xa0, tlv(TAG.integer, Buffer.of(2)));
    this.#publicKey = leafPublicKey.export({ type: 'spki', format: 'der' });
    // RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
    const keyId = createHash('sha1').update(subjectPublicKeyBits(leafPublicKey)).digest();
    this.#fixedExtensions = Buffer.concat([
      extension(oid('2.5.29.19'), false, sequence()), // basicConstraints: not a CA
      extension(oid('2.5.29.15'), true, keyUsageFor(leafPublicKey)),
      extension(oid('2.5.29.37'), false, sequence(oid('1.3.6.1.5.5.7.3.1'))), // extKeyUsage: serverAuth
    ]);
    this.#keyIdentifiers = Buffer.concat([
      extension(oid('2.5.29.14'), false, tlv(TAG.octetString, keyId)),
      extension(oid('2.5.29.35'), false, sequence(tlv(0x80, caSubjectKeyIdentifier))),
    ]);
  }

  /** A validity from a day before `now` for at most 397 days, inside the CA's; throws once the CA has expired. */
  validity(now: Date): { notBefore: Date; notAfter: Date } {
    const notBefore = new Date(Math.max(now.getTime() - BACKDATE_MS, this.#caNotBefore));
    const notAfter = new Date(Math.min(notBefore.getTime() + MAX_VALIDITY_MS, this.#caNotAfter));
    if (notAfter.getTime() <= now.getTime()) throw new Error(`the Layover CA expired on ${new Date(this.#caNotAfter).toISOString()}`);
    return { notBefore, notAfter };
  }

  /** The DER TBSCertificate for `fields`. */
  tbs(fields: LeafFields): Buffer {
    const subject =
      fields.commonName === null
        ? sequence()
        : sequence(tlv(TAG.set, sequence(COMMON_NAME, tlv(TAG.printableString, Buffer.from(fields.commonName, 'latin1')))));
    const altNames = [
      tlv(0x82, Buffer.from(fields.dnsName, 'latin1')),
      ...(fields.ips ?? []).map((ip) => tlv(0x87, ipBytes(ip))),
    ];
    const extensions = Buffer.concat([
      this.#fixedExtensions,
      extension(SUBJECT_ALT_NAME, fields.commonName === null, sequence(...altNames)),
      this.#keyIdentifiers,
    ]);
    return sequence(
      this.#head,
      tlv(TAG.integer, fields.serial),
      SHA256_WITH_RSA,
      this.#issuer,
      sequence(time(fields.notBefore), time(fields.notAfter)),
      subject,
      this.#publicKey,
      tlv(0xa3, sequence(extensions)),
    );
  }

  /** The certificate for `fields`, signed by `caKey` (RSA, PKCS#1 v1.5 with SHA-256), as PEM. */
  issue(fields: LeafFields, caKey: KeyObject): string {
    const tbs = this.tbs(fields);
    const signature = sign('sha256', tbs, caKey);
    const der = sequence(tbs, SHA256_WITH_RSA, tlv(TAG.bitString, Buffer.of(0), signature));
    const base64 = der.toString('base64');
    const lines: string[] = [];
    for (let at = 0; at < base64.length; at += 64) lines.push(base64.slice(at, at + 64));
    return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
  }
}
