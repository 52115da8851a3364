import { constants } from 'node:crypto';
import { DEFAULT_CIPHERS } from 'node:tls';

const AES_128_GCM = 'TLS_AES_128_GCM_SHA256';

/**
 * `defaults` (a cipher list, `:`-separated) with AES-128-GCM moved to the front; a list without it (an
 * operator's --tls-cipher-list that leaves it out) is kept as it is.
 */
export function serverCipherList(defaults: string): string {
  const suites = defaults.split(':');
  return suites.includes(AES_128_GCM) ? [AES_128_GCM, ...suites.filter((suite) => suite !== AES_128_GCM)].join(':') : defaults;
}

/**
 * The cipher choice of every TLS server of Layover (443, the registry ports, CONNECT), spread into its
 * options and secure contexts. A Node server picks by its own list, which puts AES-256-GCM first; ours
 * puts AES-128-GCM first, as Go's servers and most CDNs do on CPUs with AES instructions: both ends do
 * four fewer AES rounds per block (warm 1 GiB 0.77-0.79 s against 0.84-0.86 s with AES-256 here,
 * bench/README.md). A client that puts ChaCha20 first, which says it has no AES instructions, still
 * gets ChaCha20 (SSL_OP_PRIORITIZE_CHACHA). The suites and the rest of their order stay Node's (and so
 * follow --tls-cipher-list); the server's order decides, as tls.Server's honorCipherOrder does by
 * default, also where a context is used without one (CONNECT).
 */
export const SERVER_CIPHERS = {
  ciphers: serverCipherList(DEFAULT_CIPHERS),
  secureOptions: constants.SSL_OP_CIPHER_SERVER_PREFERENCE | constants.SSL_OP_PRIORITIZE_CHACHA,
} as const;
