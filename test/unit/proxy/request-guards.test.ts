import { describe, expect, it } from 'vitest';
import { checkRequestHead } from '../../../src/proxy/request-guards.js';

const host = (value: string): string[] => ['Host', value];

describe('checkRequestHead', () => {
  it.each([
    ['one Host', host('registry.test'), '/v2/'],
    ['a Host with a port', host('registry.test:5000'), '/v2/library/app/manifests/latest?ns=docker.io'],
    ['an IPv4 Host', host('127.0.0.1'), '/ca.crt'],
    ['an IPv6 Host', host('[::1]:443'), '/healthz'],
    ['a name with an underscore and a trailing dot', host('a_b.registry.test.'), '/v2/'],
    ['no Host (HTTP/1.0)', [], '/v2/'],
    ['an empty Host', host(''), '/v2/'],
    ['HTTP/2 :authority alone', [':authority', 'registry.test'], '/v2/'],
    ['HTTP/2 :authority and the same host', [':authority', 'registry.test', 'host', 'Registry.Test:443'], '/v2/'],
  ])('accepts %s', (_case, headers, url) => {
    expect(checkRequestHead(headers, url)).toEqual({ ok: true });
  });

  it.each([
    ['two different', [...host('registry.test'), ...host('other.example')]],
    ['two equal', [...host('registry.test'), ...host('registry.test')]],
    ['differently spelt', ['host', 'registry.test', 'HOST', 'registry.test']],
    ['three', [...host('a'), ...host('b'), ...host('c')]],
  ])('refuses %s Host headers', (_case, headers) => {
    expect(checkRequestHead(headers, '/v2/')).toMatchObject({ ok: false, reason: 'duplicate-host' });
  });

  it.each(['a, b', 'registry.test registry.test', 'user@registry.test', 'registry.test:443:1', 'registry.test/v2', 'registry.test:123456', '[::1', 'a\tb'])(
    'refuses the Host value %j',
    (value) => expect(checkRequestHead(host(value), '/v2/')).toMatchObject({ ok: false, reason: 'invalid-host' }),
  );

  it('refuses an HTTP/2 host that disagrees with :authority', () => {
    expect(checkRequestHead([':authority', 'registry.test', 'host', 'other.example'], '/v2/')).toMatchObject({ ok: false, reason: 'authority-mismatch' });
  });

  it.each([
    ['https://registry.test/v2/', 'registry.test', '/v2/'],
    ['HTTPS://Registry.Test:443/v2/a/blobs/sha256:0?x=1', 'registry.test', '/v2/a/blobs/sha256:0?x=1'],
    ['https://registry.test', 'registry.test', '/'],
    ['https://registry.test?ns=docker.io', 'registry.test', '/?ns=docker.io'],
    ['http://docker.proxy/ca.crt', 'docker.proxy:80', '/ca.crt'],
    ['https://registry.test:5000/v2/', 'registry.test:5000', '/v2/'],
  ])('reduces the absolute-form %s (Host %s) to %s', (url, hostValue, path) => {
    expect(checkRequestHead(host(hostValue), url)).toEqual({ ok: true, url: path });
  });

  it.each([
    ['https://other.example/v2/', 'registry.test'],
    ['https://registry.test:5000/v2/', 'registry.test'],
    ['https://registry.test.evil.example/v2/', 'registry.test'],
    ['https://registry.test/v2/', undefined],
  ])('refuses the absolute-form %s with Host %s', (url, hostValue) => {
    expect(checkRequestHead(hostValue === undefined ? [] : host(hostValue), url)).toMatchObject({ ok: false, reason: 'authority-mismatch' });
  });

  it.each([
    '*',
    '//other.example/v2/',
    'registry.test:443',
    'v2/',
    'ftp://registry.test/v2/',
    'https:///v2/',
    'https://user@registry.test/v2/',
    'https://other.example@registry.test/v2/',
    'https://registry.test\\@other.example/v2/',
    'https://registry.test#@other.example/v2/',
    'https://registry.test//other.example/v2/',
  ])('refuses the request target %j', (url) => {
    expect(checkRequestHead(host('registry.test'), url)).toMatchObject({ ok: false, reason: 'invalid-target' });
  });

  it.each(['xchunked', 'gzip', 'chunked, identity', 'chunked, gzip', 'identity'])('refuses a body whose last transfer coding is not chunked: %j', (coding) => {
    expect(checkRequestHead([...host('registry.test'), 'Transfer-Encoding', coding], '/v2/')).toMatchObject({ ok: false, reason: 'invalid-transfer-encoding' });
  });

  it('checks the transfer codings of every Transfer-Encoding line, in order', () => {
    const te = (...values: string[]): string[] => [...host('registry.test'), ...values.flatMap((v) => ['Transfer-Encoding', v])];
    expect(checkRequestHead(te('chunked', 'identity'), '/v2/')).toMatchObject({ ok: false, reason: 'invalid-transfer-encoding' });
    expect(checkRequestHead(te('gzip', 'chunked'), '/v2/')).toEqual({ ok: true });
    expect(checkRequestHead(te('Chunked'), '/v2/')).toEqual({ ok: true });
  });

  it('stays linear on a long hostile Host value', () => {
    const started = performance.now();
    expect(checkRequestHead(host(`${'a.'.repeat(8000)}!`), '/v2/')).toMatchObject({ ok: false });
    expect(performance.now() - started).toBeLessThan(50);
  });
});
