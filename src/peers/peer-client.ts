import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import type { HostPort } from '../config/parsers.js';
import type { Digest } from '../registry/digest.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';
import { PEER_SIGNATURE_HEADER, type PeerKey } from './peer-key.js';

/** Where a replica serves the blobs it holds or is filling to the other replicas (src/peers/peer-blob-route.ts). */
export const PEER_BLOB_PREFIX = '/layover/peer/blobs/';
/** A live replica accepts within this; longer means it is gone or cut off, and the fill is taken over. */
const CONNECT_TIMEOUT_MS = 3_000;

/** Sent by a replica whose client cannot take a body of unknown length (HTTP/1.0). */
export const PEER_LENGTH_HEADER = 'layover-peer-length';
/** The registry the asking replica's client named: only a fill or copy from it is sent (src/access/: whose bytes go to whom). */
export const PEER_REGISTRY_HEADER = 'layover-peer-registry';
/** How long such an answer may take: a whole download of a large blob; a dead owner is reset sooner. */
const LENGTH_WAIT_MS = 60 * 60_000;

export interface PeerAnswer {
  statusCode: number;
  /** Content-Length when the peer gave a valid one. */
  size: number | undefined;
  body: Readable;
}

/**
 * Asks another replica for a blob it holds or is fetching, over TLS to its HTTPS listener (its
 * certificate for docker.proxy, issued by the CA the fleet shares), signed with the fleet's key.
 * Addresses come from the shared index: only IP literals, dialled as they are (no resolver).
 */
export class PeerClient {
  readonly #agent: Agent;
  readonly #key: PeerKey;

  constructor(options: { caCertPem: string; key: PeerKey; readTimeoutMs: number }) {
    this.#key = options.key;
    this.#agent = new Agent({
      connect: { ca: options.caCertPem, servername: DOCKER_PROXY_HOST, timeout: CONNECT_TIMEOUT_MS },
      // The owner answers once its upstream did: as long as an upstream may take.
      headersTimeout: options.readTimeoutMs + CONNECT_TIMEOUT_MS,
      bodyTimeout: options.readTimeoutMs,
    });
  }

  /**
   * The blob as `peer` holds or fetches it from `registry` (a 404 when its copy or fill came from another).
   * `lengthRequired`: a fill of unknown length is answered once verified, with its length (PEER_LENGTH_HEADER).
   */
  async fetchBlob(peer: HostPort, digest: Digest, registry: string, signal?: AbortSignal, options: { lengthRequired?: boolean } = {}): Promise<PeerAnswer> {
    const path = `${PEER_BLOB_PREFIX}${digest}`;
    const host = peer.host.includes(':') ? `[${peer.host}]` : peer.host;
    const response = await request(`https://${host}:${peer.port}${path}`, {
      dispatcher: this.#agent,
      headers: {
        host: DOCKER_PROXY_HOST,
        [PEER_SIGNATURE_HEADER]: this.#key.sign('GET', path),
        'accept-encoding': 'identity',
        [PEER_REGISTRY_HEADER]: registry,
        ...(options.lengthRequired ? { [PEER_LENGTH_HEADER]: 'required' } : {}),
      },
      signal,
      // An answer that waits for the owner's fill to be verified comes when the fill ends (its stall timeout bounds it).
      ...(options.lengthRequired ? { headersTimeout: LENGTH_WAIT_MS } : {}),
    });
    const length = Number(response.headers['content-length']);
    return { statusCode: response.statusCode, size: Number.isSafeInteger(length) && length >= 0 ? length : undefined, body: response.body };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}
