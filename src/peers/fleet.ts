import type { FastifyBaseLogger } from 'fastify';
import type { BlobCache } from '../cache/blob-cache.js';
import type { LayoverConfig } from '../config/layover-config.js';
import type { CertificateAuthority } from '../tls/ca.js';
import { FleetFills } from './fleet-fills.js';
import { PeerClient } from './peer-client.js';
import { PeerKey } from './peer-key.js';

/** What a replica of a shared index needs to fetch each digest once for the whole fleet. */
export interface Fleet {
  readonly fills: FleetFills;
  readonly client: PeerClient;
  readonly key: PeerKey;
}

/** The fleet of a shared index with a PEER_ADDRESS; null for a replica on its own (SQLite) or with PEER_ADDRESS=off. */
export function createFleet(config: LayoverConfig, cache: BlobCache, ca: CertificateAuthority, logger: FastifyBaseLogger): Fleet | null {
  if (!config.peerAddress) return null;
  const key = PeerKey.fromCa(ca.privateKey);
  logger.info({ peerAddress: config.peerAddress }, 'fleet fills: one upstream fetch per digest across the replicas of the shared index');
  return {
    key,
    fills: new FleetFills(cache.leases, config.peerAddress, logger),
    client: new PeerClient({ caCertPem: ca.certPem, key, readTimeoutMs: config.timeouts.proxyReadMs }),
  };
}
