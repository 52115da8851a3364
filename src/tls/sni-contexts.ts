import type { Metrics } from '../metrics/metrics.js';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import { parseHostname, type Hostname, type HostnameSet } from '../registry/hostname.js';
import type { CertificateAuthority } from './ca.js';
import type { CustomCertificate } from './custom-certificates.js';
import { mintLeafCertificate } from './leaf-certificate.js';
import { LruMap } from './lru-map.js';
import { mintServerCertificate } from './server-certificate.js';
import { SERVER_CIPHERS } from './server-ciphers.js';

export interface SniContextsOptions {
  ca: CertificateAuthority;
  intercepted: HostnameSet;
  /** The name on the certificate served when no intercepted name is asked for. */
  defaultName?: string;
  /**
   * IP addresses the default certificate also covers (LAYOVER_ADVERTISE): mirror clients told
   * `https://<address>` send no SNI and get that certificate.
   */
  addresses?: readonly string[];
  /** Certificates of the operator's own, by custom domain (./custom-certificates.ts): served as they are. */
  certificates?: ReadonlyMap<string, CustomCertificate>;
  /** How many certificates (per name or per wildcard) to keep; one evicted is minted again on its next handshake. */
  maxEntries?: number;
  logger: FastifyBaseLogger;
  /** Counts handshakes and certificates minted. */
  metrics?: Metrics;
}

type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;

/**
 * Leaves are valid for about 396 days ahead; a process that runs longer than that must not
 * start serving expired certificates, so an entry older than this is minted again.
 */
const RENEW_AFTER_MS = 300 * 24 * 60 * 60 * 1000;

/**
 * With wildcards sharing a certificate, a few dozen entries serve every registry; the bound only
 * matters against a client cycling through made-up names under a wildcard (about 40 KiB each).
 */
const DEFAULT_MAX_ENTRIES = 256;

interface Entry<T> {
  readonly value: T;
  readonly renewAt: number;
}

/**
 * Serves a certificate per intercepted hostname, minted on the first handshake that names it.
 *
 * A name under a wildcard in REGISTRIES (`*.pkg.dev`) gets the wildcard certificate of its parent
 * (`*.pkg.dev` for `europe-docker.pkg.dev`, `*.b.pkg.dev` for `a.b.pkg.dev`: a wildcard stands
 * for one label, RFC 6125 6.4.3), so the names below one parent share one certificate instead of
 * costing a mint and a context each, and the wildcard never covers a name that is not intercepted.
 * Where the parent is a single label (`*.internal`), which verifiers refuse as a wildcard, the
 * name gets its own certificate.
 *
 * The cache holds the *promise* of a context, so simultaneous first handshakes for one
 * certificate share one mint, and it is an LRU bounded by count (each context holds its own
 * parsed key and certificate, tens of KiB) so a client cycling through names cannot grow it
 * without bound. Names that are not intercepted, malformed or missing get the default certificate
 * (docker.proxy and the advertised addresses, for mirror clients that connect by address):
 * Layover never mints for a name a client made up. A custom domain with a certificate of the
 * operator's own gets that one, never one of Layover's CA.
 *
 * Each context carries the leaf alone, not leaf + CA: clients must already trust the CA as a
 * root, and a root sent in the chain is ignored by verifiers (RFC 8446 4.4.2 lets servers
 * omit it), so it would only add ~1.3 KB to every handshake.
 */
export class SniContexts {
  readonly #ca: CertificateAuthority;
  readonly #intercepted: HostnameSet;
  readonly #logger: FastifyBaseLogger;
  readonly #defaultName: Hostname;
  readonly #addresses: readonly string[];
  readonly #certificates: ReadonlyMap<string, CustomCertificate>;
  readonly #defaultCertPem: string;
  #defaultContext: Entry<SecureContext>;
  /** Keyed by the name on the certificate: a hostname, or `*.parent` for the names under a wildcard. */
  readonly #contexts: LruMap<string, Entry<Promise<SecureContext>>>;
  /** The suffixes of the wildcard patterns in REGISTRIES (`pkg.dev` for `*.pkg.dev`). */
  readonly #wildcardSuffixes: readonly string[];
  readonly #metrics: Metrics | undefined;

  constructor(options: SniContextsOptions) {
    const defaultName = parseHostname(options.defaultName ?? 'docker.proxy');
    if (!defaultName) throw new Error(`defaultName: expected a hostname, got ${JSON.stringify(options.defaultName)}`);
    this.#ca = options.ca;
    this.#intercepted = options.intercepted;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#defaultName = defaultName;
    this.#addresses = options.addresses ?? [];
    this.#certificates = options.certificates ?? new Map();
    this.#contexts = new LruMap(options.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.#wildcardSuffixes = options.intercepted.wildcards().map((pattern) => pattern.slice(2));
    this.#defaultCertPem = mintServerCertificate(options.ca, defaultName, this.#addresses);
    this.#defaultContext = this.#entry(createSecureContext({ key: options.ca.leafKey.privateKeyPem, cert: this.#defaultCertPem, ...SERVER_CIPHERS }));
  }

  /** Options to spread into https.createServer / fastify's `https` option. */
  serverOptions(): { SNICallback: SniCallback; key: string; cert: string; ciphers: string; secureOptions: number } {
    return {
      ...SERVER_CIPHERS,
      SNICallback: (servername, cb) => this.#onServername(servername, cb),
      key: this.#ca.leafKey.privateKeyPem,
      cert: this.#defaultCertPem,
    };
  }

  #onServername(servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
    const own = typeof servername === 'string' ? this.#certificates.get(parseHostname(servername) ?? '') : undefined;
    if (own) return cb(null, own.context);
    const name = this.#interceptedName(servername);
    // The same certificate as the server's static default, but renewed like the others;
    // only clients that send no SNI at all get the static one.
    if (name === null || name === this.#defaultName) return cb(null, this.#renewedDefaultContext());
    this.#contextFor(name)
      .then(
        (context) => cb(null, context),
        (err: unknown) => {
          this.#logger.error({ host: name, err }, 'minting a TLS certificate failed');
          cb(err instanceof Error ? err : new Error(String(err)));
        },
      )
      // cb belongs to Node's TLS socket; should it ever throw, log rather than crash the server.
      .catch((err: unknown) => this.#logger.error({ host: name, err }, 'SNI callback failed'));
  }

  /** The normalised name when it is a DNS name we intercept, else null. */
  #interceptedName(servername: unknown): Hostname | null {
    if (typeof servername !== 'string') return null;
    const name = parseHostname(servername);
    // parseHostname accepts all-digit labels, so an IPv4 literal would pass it.
    if (name === null || isIP(name) !== 0) return null;
    return this.#intercepted.has(name) ? name : null;
  }

  /** The name on the certificate that serves `name`: the wildcard of its parent when a wildcard pattern intercepts it. */
  #certificateName(name: Hostname): string {
    if (!this.#wildcardSuffixes.some((suffix) => name.endsWith(`.${suffix}`))) return name;
    const parent = name.slice(name.indexOf('.') + 1);
    return parent.includes('.') ? `*.${parent}` : name;
  }

  #contextFor(name: Hostname): Promise<SecureContext> {
    const certificateName = this.#certificateName(name);
    const cached = this.#contexts.get(certificateName);
    if (cached && Date.now() < cached.renewAt) return cached.value;
    const entry = this.#entry(this.#mint(name, certificateName));
    this.#contexts.set(certificateName, entry);
    // Drop a failure at once so that the next handshake tries again instead of failing forever.
    entry.value.catch(() => {
      if (this.#contexts.peek(certificateName) === entry) this.#contexts.delete(certificateName);
    });
    return entry.value;
  }

  #renewedDefaultContext(): SecureContext {
    if (Date.now() >= this.#defaultContext.renewAt) {
      try {
        this.#defaultContext = this.#entry(this.#mintNow(this.#defaultName));
      } catch (err) {
        // The old certificate still has weeks left; keep it and try again on a later handshake.
        this.#logger.error({ host: this.#defaultName, err }, 'renewing the default TLS certificate failed');
      }
    }
    return this.#defaultContext.value;
  }

  async #mint(name: Hostname, certificateName: string): Promise<SecureContext> {
    return this.#mintNow(name, certificateName);
  }

  /** `name`: the host asked for (logged); `certificateName`: the name the certificate carries. */
  #mintNow(name: Hostname, certificateName: string = name): SecureContext {
    const started = performance.now();
    const cert = name === this.#defaultName ? mintServerCertificate(this.#ca, name, this.#addresses) : mintLeafCertificate(this.#ca, certificateName);
    const context = createSecureContext({ key: this.#ca.leafKey.privateKeyPem, cert, ...SERVER_CIPHERS });
    const ms = Math.round((performance.now() - started) * 100) / 100;
    this.#logger.info({ host: name, certificate: certificateName, ms }, 'minted TLS certificate');
    this.#metrics?.certificatesMinted.inc();
    return context;
  }

  #entry<T>(value: T): Entry<T> {
    return { value, renewAt: Date.now() + RENEW_AFTER_MS };
  }
}
