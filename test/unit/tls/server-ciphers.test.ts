import { DEFAULT_CIPHERS } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { SERVER_CIPHERS, serverCipherList } from '../../../src/tls/server-ciphers.js';

describe('serverCipherList', () => {
  test("Node's list with AES-128-GCM first and every other suite kept once, in its order", () => {
    const suites = SERVER_CIPHERS.ciphers.split(':');
    expect(suites[0]).toBe('TLS_AES_128_GCM_SHA256');
    expect(suites.slice(1)).toEqual(DEFAULT_CIPHERS.split(':').filter((suite) => suite !== 'TLS_AES_128_GCM_SHA256'));
  });

  test('a list without AES-128-GCM (an operator\'s --tls-cipher-list) stays as it is', () => {
    expect(serverCipherList('TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384')).toBe('TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384');
    expect(serverCipherList('TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256')).toBe('TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256');
  });
});
