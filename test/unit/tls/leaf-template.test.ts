import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { children, oid, randomSerial, time, tlv } from '../../../src/tls/certificate-der.js';
import { loadOrCreateCa, type CertificateAuthority } from '../../../src/tls/ca.js';
import { ipBytes, LeafTemplate, type LeafFields } from '../../../src/tls/leaf-template.js';
import { signCertificate } from '../../../src/tls/native-signer.js';

let dir: string;
let ca: CertificateAuthority;
/** forge knows only RSA keys: the byte-for-byte comparison runs on a template for an RSA leaf key. */
const rsaLeaf = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
let rsaTemplate: LeafTemplate;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'layover-leaf-template-'));
  ({ ca } = await loadOrCreateCa(dir));
  rsaTemplate = new LeafTemplate(ca.certPem, ca.subjectKeyIdentifier, rsaLeaf);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The leaf as Layover built it with forge before the template: the reference for every byte. */
function forgeLeaf(fields: LeafFields): Buffer {
  const cert = forge.pki.createCertificate();
  cert.version = 2;
  cert.serialNumber = fields.serial.toString('hex');
  cert.publicKey = forge.pki.publicKeyFromPem(rsaLeaf.export({ type: 'spki', format: 'pem' }).toString());
  cert.validity.notBefore = fields.notBefore;
  cert.validity.notAfter = fields.notAfter;
  cert.setSubject(fields.commonName === null ? [] : [{ name: 'commonName', value: fields.commonName }]);
  cert.setIssuer(forge.pki.certificateFromPem(ca.certPem).subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [{ type: 2, value: fields.dnsName }, ...(fields.ips ?? []).map((ip) => ({ type: 7, ip }))],
      critical: fields.commonName === null,
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.subjectKeyIdentifier.toString('binary') },
  ]);
  signCertificate(cert, ca.privateKey);
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
}

const derOf = (pem: string): Buffer => new X509Certificate(pem).raw;

describe('LeafTemplate', () => {
  const now = new Date();
  const cases: [string, Omit<LeafFields, 'serial' | 'notBefore' | 'notAfter'>][] = [
    ['a registry name', { commonName: 'quay.io', dnsName: 'quay.io' }],
    ['a wildcard', { commonName: '*.n7.tls.test', dnsName: '*.n7.tls.test' }],
    ['a name too long for the CN (empty subject, critical SAN)', { commonName: null, dnsName: `${'a'.repeat(60)}.${'b'.repeat(60)}.pkg.dev` }],
    ['docker.proxy with IPv4 and IPv6 addresses', { commonName: 'docker.proxy', dnsName: 'docker.proxy', ips: ['127.0.0.1', '10.1.2.3', '::1', 'fd00::1:2', '::', '2001:db8::', '2001:db8:0:0:1:0:0:1', 'fe80::a:b:c:d'] }],
  ];
  test.each(cases)('issues, byte for byte, the certificate forge built from the same fields: %s', (_, names) => {
    const fields: LeafFields = { ...names, ...rsaTemplate.validity(now), serial: randomSerial() };
    expect(derOf(rsaTemplate.issue(fields, ca.privateKey)).equals(forgeLeaf(fields))).toBe(true);
  });

  test('dates from 2050 on are GeneralizedTime, as forge and RFC 5280 write them', () => {
    const fields: LeafFields = { commonName: 'quay.io', dnsName: 'quay.io', serial: randomSerial(), notBefore: new Date('2049-12-31T23:59:59Z'), notAfter: new Date('2050-01-01T00:00:00Z') };
    const pem = rsaTemplate.issue(fields, ca.privateKey);
    expect(derOf(pem).equals(forgeLeaf(fields))).toBe(true);
    expect(new X509Certificate(pem).validTo).toBe('Jan  1 00:00:00 2050 GMT');
  });

  test('the issuer is the CA certificate subject byte for byte, and the signature verifies', () => {
    const pem = ca.leafTemplate.issue({ commonName: 'ghcr.io', dnsName: 'ghcr.io', serial: randomSerial(), ...ca.leafTemplate.validity(now) }, ca.privateKey);
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
    const tbsFields = (der: Buffer) => children(children(der)[0]!);
    const leaf = new X509Certificate(pem);
    const root = new X509Certificate(ca.certPem);
    expect(tbsFields(leaf.raw)[3]!.equals(tbsFields(root.raw)[5]!)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
  });

  test("the process's leaves certify its ECDSA P-256 key, with the key identifier of its point", () => {
    const leaf = new X509Certificate(ca.leafTemplate.issue({ commonName: 'ghcr.io', dnsName: 'ghcr.io', serial: randomSerial(), ...ca.leafTemplate.validity(now) }, ca.privateKey));
    expect(leaf.publicKey.asymmetricKeyType).toBe('ec');
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(leaf.publicKey.equals(ca.leafKey.publicKey)).toBe(true);
    // RFC 5280 4.2.1.2 method 1 over the subjectPublicKey bits: the last 65 bytes of a P-256 SPKI.
    const spki = ca.leafKey.publicKey.export({ type: 'spki', format: 'der' });
    const keyId = createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
    // subjectKeyIdentifier: its OID, then an OCTET STRING holding the 20-byte OCTET STRING.
    expect(leaf.raw.includes(Buffer.concat([oid('2.5.29.14'), Buffer.of(0x04, 0x16, 0x04, 0x14), keyId]))).toBe(true);
    // keyUsage, critical: digitalSignature only.
    expect(leaf.raw.includes(Buffer.concat([oid('2.5.29.15'), Buffer.of(0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80)]))).toBe(true);
  });

  test('an IPv6 address ending in dotted IPv4 is the same 16 bytes written in hex', () => {
    expect(ipBytes('::ffff:192.0.2.1').toString('hex')).toBe(ipBytes('::ffff:c000:201').toString('hex'));
    expect(ipBytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(ipBytes('64:ff9b::10.1.2.3').toString('hex')).toBe('0064ff9b00000000000000000a010203');
    expect(ipBytes('10.1.2.3').toString('hex')).toBe('0a010203');
  });

  test('an address that does not parse is refused rather than encoded', () => {
    for (const ip of ['999.1.1.1', '1.2.3', 'docker.proxy', '::g', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9']) {
      expect(() => ca.leafTemplate.tbs({ commonName: 'docker.proxy', dnsName: 'docker.proxy', ips: [ip], serial: randomSerial(), ...ca.leafTemplate.validity(now) })).toThrow(/not an IP address/);
    }
  });
});

describe('certificate DER', () => {
  test('lengths use the short form below 128 and the long form above', () => {
    expect(tlv(0x04, Buffer.alloc(127)).subarray(0, 2)).toEqual(Buffer.from('047f', 'hex'));
    expect(tlv(0x04, Buffer.alloc(128)).subarray(0, 3)).toEqual(Buffer.from('048180', 'hex'));
    expect(tlv(0x04, Buffer.alloc(300)).subarray(0, 4)).toEqual(Buffer.from('0482012c', 'hex'));
  });

  test('object identifiers and times encode as X.690 and RFC 5280 say', () => {
    expect(oid('1.2.840.113549.1.1.11').toString('hex')).toBe('06092a864886f70d01010b');
    expect(oid('2.5.29.17').toString('hex')).toBe('0603551d11');
    expect(time(new Date('2049-06-01T01:02:03.999Z')).toString('latin1')).toBe('\x17\x0d490601010203Z');
    expect(time(new Date('2050-06-01T01:02:03Z')).toString('latin1')).toBe('\x18\x0f20500601010203Z');
  });

  test('reading refuses an element that overruns its container or is cut short', () => {
    expect(() => children(Buffer.from('3005020101', 'hex'))).toThrow(/overruns/);
    expect(() => children(Buffer.from('3003020201', 'hex'))).toThrow(/overruns/);
    expect(() => children(Buffer.from('3084ffffffff', 'hex'))).toThrow(/overruns/);
    expect(() => children(Buffer.from('30', 'hex'))).toThrow(/truncated/);
    expect(children(Buffer.from('3006020101020102', 'hex')).map((b) => b.toString('hex'))).toEqual(['020101', '020102']);
  });
});
