import { describe, expect, it } from 'vitest';
import { MAX_HIT_HEAD_BYTES, readHitRequestHead } from '../../../src/proxy/hit-request-head.js';

const PATH = `/v2/team/app/manifests/sha256:${'a'.repeat(64)}`;
const head = (lines: string[]): Buffer => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
const plain = (...headers: string[]): Buffer => head([`GET ${PATH} HTTP/1.1`, 'Host: registry.test', ...headers]);

describe('readHitRequestHead', () => {
  it('reads a registry client\'s GET: method, target, the headers the hit path reads, every header as sent, where the next request starts', () => {
    const bytes = plain('User-Agent: containerd/2.0', 'Accept:  application/vnd.oci.image.manifest.v1+json ', 'Authorization: Basic dTpw');
    expect(readHitRequestHead(bytes, 0)).toEqual({
      method: 'GET',
      url: PATH,
      httpVersionMajor: 1,
      headers: { host: 'registry.test', accept: 'application/vnd.oci.image.manifest.v1+json', authorization: 'Basic dTpw' },
      rawHeaders: ['Host', 'registry.test', 'User-Agent', 'containerd/2.0', 'Accept', 'application/vnd.oci.image.manifest.v1+json', 'Authorization', 'Basic dTpw'],
      close: false,
      end: bytes.length,
    });
  });

  it('reads pipelined requests one after the other, from where the one before ended', () => {
    const first = plain();
    const second = head([`HEAD ${PATH} HTTP/1.1`, 'host: registry.test', 'Connection: close']);
    const bytes = Buffer.concat([first, second]);
    const one = readHitRequestHead(bytes, 0)!;
    expect(one).toMatchObject({ method: 'GET', end: first.length, close: false });
    expect(readHitRequestHead(bytes, one.end)).toMatchObject({ method: 'HEAD', url: PATH, close: true, end: bytes.length, headers: { host: 'registry.test', connection: 'close' } });
  });

  it('trims the blanks around a value and keeps those inside it', () => {
    const blanks = ' \t'.repeat(1000);
    expect(readHitRequestHead(plain(`User-Agent:${blanks}a${blanks}b${blanks}`), 0)?.rawHeaders.slice(2)).toEqual(['User-Agent', `a${blanks}b`]);
  });

  it('takes Connection: keep-alive and close, in any case and list', () => {
    expect(readHitRequestHead(plain('Connection: Keep-Alive'), 0)).toMatchObject({ close: false });
    expect(readHitRequestHead(plain('Connection: keep-alive, CLOSE'), 0)).toMatchObject({ close: true });
  });

  const unfit: Array<[string, Buffer]> = [
    ['a head not yet complete', Buffer.from(`GET ${PATH} HTTP/1.1\r\nHost: registry.test\r\n`, 'latin1')],
    ['another method', head([`POST ${PATH} HTTP/1.1`, 'Host: registry.test'])],
    ['a lower-case method', head([`get ${PATH} HTTP/1.1`, 'Host: registry.test'])],
    ['HTTP/1.0', head([`GET ${PATH} HTTP/1.0`, 'Host: registry.test'])],
    ['a target outside /v2/', head(['GET /ca.crt HTTP/1.1', 'Host: registry.test'])],
    ['an absolute target', head([`GET https://registry.test${PATH} HTTP/1.1`, 'Host: registry.test'])],
    ['two spaces in the request line', head([`GET  ${PATH} HTTP/1.1`, 'Host: registry.test'])],
    ['a space in the target', head([`GET /v2/a b/manifests/x HTTP/1.1`, 'Host: registry.test'])],
    ['a body by length', plain('Content-Length: 0')],
    ['a chunked body', plain('Transfer-Encoding: chunked')],
    ['an upgrade', plain('Connection: Upgrade', 'Upgrade: h2c')],
    ['another connection option', plain('Connection: TE')],
    ['an Expect', plain('Expect: 100-continue')],
    ['a range', plain('Range: bytes=0-1')],
    ['a folded header', plain('Accept: a,', ' b')],
    ['a space before the colon', plain('Accept : a')],
    ['a header without a colon', plain('Accept')],
    ['a bare LF in a header', plain('Accept: a\nX-Smuggled: b')],
    ['a control byte in a value', plain('Accept: a\u0000b')],
    ['a byte above ASCII in a value', plain('User-Agent: caf\u00e9')],
    ['Host twice', plain('Host: other.test')],
    ['Authorization twice', plain('Authorization: Basic a', 'Authorization: Basic b')],
    ['Accept twice', plain('Accept: a', 'Accept: b')],
    ['a head over the limit', plain(`X-Pad: ${'p'.repeat(MAX_HIT_HEAD_BYTES)}`)],
    ['more headers than the limit', plain(...Array.from({ length: 64 }, (_, i) => `X-${i}: ${i}`))],
  ];
  it.each(unfit)('leaves to Node\'s parser: %s', (_what, bytes) => {
    expect(readHitRequestHead(bytes, 0)).toBeUndefined();
  });

  it('a plain head after an unfit one is read from its own start', () => {
    const bytes = Buffer.concat([plain('Range: bytes=0-1'), plain()]);
    expect(readHitRequestHead(bytes, 0)).toBeUndefined();
    expect(readHitRequestHead(bytes, plain('Range: bytes=0-1').length)).toMatchObject({ method: 'GET', end: bytes.length });
  });
});
