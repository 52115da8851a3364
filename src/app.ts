import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { join } from 'node:path';
import replyFrom from '@fastify/reply-from';
import { fastify, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AccessRecords } from './access/access-records.js';
import { AdminAccess } from './admin/admin-access.js';
import { adminRoutes } from './admin/admin-routes.js';
import { loadOrCreateAdminToken } from './admin/admin-token.js';
import type { OperationsContext } from './admin/operations-context.js';
import { Metrics } from './metrics/metrics.js';
import { metricsRoute } from './metrics/metrics-route.js';
import { prefetchRoutes } from './prefetch/prefetch-routes.js';
import { startPrefetchSchedule, type PrefetchSchedule } from './prefetch/prefetch-schedule.js';
import { statusRoutes } from './status/status-routes.js';
import { DockerHubBudget } from './upstream/docker-hub-budget.js';
import { BlobCache } from './cache/blob-cache.js';
import { createClientAuth } from './client-auth/create-client-auth.js';
import { registerConnectAuthorityCheck } from './connect-proxy/connect-authority.js';
import type { ConnectProxy, InterceptServer } from './connect-proxy/connect-proxy.js';
import { createConnectProxy } from './connect-proxy/create-connect-proxy.js';
import type { LayoverConfig } from './config/layover-config.js';
import { SETTINGS } from './config/settings.js';
import type { DnsServer } from './dns/dns-server.js';
import { createDnsServer } from './dns/layover-dns.js';
import { createLogger } from './log/logger.js';
import { RequestLogController } from './log/request-log.js';
import { requestIdGenerator } from './log/request-ids.js';
import { ConnectionLimits, type ConnectionCaps } from './net/connection-limits.js';
import { listenerCapWithin, openFileLimit } from './net/descriptor-budget.js';
import { ServingState } from './net/serving-state.js';
import { SilentConnections } from './net/silent-connections.js';
import { answerClientError } from './proxy/client-error.js';
import { registerErrorHandler } from './proxy/error-handler.js';
import { registerRequestGuards } from './proxy/request-guards.js';
import { dockerProxyRoute } from './proxy/docker-proxy-route.js';
import { createFleet, type Fleet } from './peers/fleet.js';
import { peerBlobRoute } from './peers/peer-blob-route.js';
import { SharedTokens } from './upstream/auth/shared-tokens.js';
import { PendingFills } from './proxy/pending-fills.js';
import { StorageRedirects } from './proxy/redirects/storage-redirects.js';
import { registryProxy } from './proxy/registry-proxy.js';
import { RegistryPortServers } from './proxy/registry-port-servers.js';
import { SERVICE_HOSTS, serviceRoutes } from './proxy/service-routes.js';
import { HostnameSet } from './registry/hostname.js';
import { setupOptionsFor } from './setup/setup-routes.js';
import { DOCKER_PROXY_HOST } from './registry/well-known-hosts.js';
import { loadOrCreateCa, type CertificateAuthority } from './tls/ca.js';
import { loadCustomCertificates } from './tls/custom-certificates.js';
import { SniContexts } from './tls/sni-contexts.js';
import { UpstreamDispatcher } from './upstream/upstream-agent.js';
import { UpstreamResolver } from './upstream/upstream-resolver.js';
import { realmHiddenByDns, registryHosts } from './upstream/auth/registry-hosts.js';
import { UpstreamAuth } from './upstream/auth/upstream-auth.js';

export interface LayoverApp {
  readonly config: LayoverConfig;
  readonly logger: Logger;
  readonly ca: CertificateAuthority;
  /** The TLS listener every intercepted name arrives at. */
  readonly https: FastifyInstance;
  /** Plain HTTP: /ca.crt, /healthz and /setup/* for node setup; /metrics, the status page and /admin/ unless ADMIN_LISTEN is set. */
  readonly http: FastifyInstance | null;
  /** ADMIN_LISTEN: /metrics, the status page and the admin API on a listener of their own; null when off. */
  readonly admin: FastifyInstance | null;
  /** Prometheus series of this app (one registry per app: replicas and tests count apart). */
  readonly metrics: Metrics;
  /** What the operations routes work with; also what the prefetch schedule runs on. */
  readonly operations: OperationsContext;
  /** HTTPS_PROXY mode: CONNECT (see connectProxy) and plain-HTTP /ca.crt, /healthz, /setup/*; null when off. */
  readonly proxy: FastifyInstance | null;
  readonly connectProxy: ConnectProxy | null;
  readonly dns: DnsServer | null;
  readonly cache: BlobCache;
  readonly upstreamAgent: UpstreamDispatcher;
  /** TLS listeners for registries configured with a port other than 443. */
  readonly registryPortServers: RegistryPortServers;
  /** Starting, ready or stopping: what /readyz answers. */
  readonly state: ServingState;
  /** Replicas of a shared index: one upstream fetch per digest for all of them (src/peers/); null alone. */
  readonly fleet: Fleet | null;
  /** Connections that never sent a request: ended by closeApp, which would otherwise wait for them. */
  readonly silentConnections: SilentConnections;
  /** The `prefetch:` list's schedule: started by listenApp, stopped by closeApp. */
  prefetchSchedule: PrefetchSchedule | null;
}

export interface AppDependencies {
  logger?: Logger;
  metrics?: Metrics;
  /** False: every request goes through fastify, hits too (tests compare the two paths); src/proxy/hit-path.ts. */
  hitPath?: boolean;
  /**
   * The DNS server, made (src/dns/layover-dns.ts) and maybe listening already: `layover serve` binds
   * it before the rest of Layover is loaded and the cache opens (src/cli/serve.ts). listenApp starts
   * it when it does not listen yet. A buildApp that fails later leaves the socket, as it leaves the
   * cache, to the process's exit.
   */
  dns?: DnsServer | null;
}

export interface ListeningAddresses {
  https: AddressInfo;
  http: AddressInfo | null;
  admin: AddressInfo | null;
  proxy: AddressInfo | null;
  dns: { host: string; port: number } | null;
  registryPorts: AddressInfo[];
}

// Options shared by both listeners (typed by inference: fastify's option types differ per server kind).
function commonOptions(config: LayoverConfig, logger: Logger, listener: string, metrics: Metrics, genReqId: () => string) {
  const { timeouts } = config;
  return {
    genReqId,
    loggerInstance: logger as FastifyBaseLogger,
    logController: new RequestLogController(listener, metrics),
    // nginx's send_timeout and client_body_timeout both bound the silence of a
    // connection in the middle of a request: the socket's inactivity timeout.
    connectionTimeout: Math.max(timeouts.sendMs, timeouts.clientBodyMs),
    keepAliveTimeout: timeouts.keepaliveMs,
    // A request that arrives on a keep-alive connection while Layover stops is served (with
    // `Connection: close`), not refused: fastify's 503 here failed about one pull in 240 across a restart.
    return503OnClosing: false,
    // Refusals of Node's parser in the OCI format too (src/proxy/client-error.ts).
    clientErrorHandler: answerClientError,
    // Idle keep-alive connections are closed by Node's server.close() itself, which closeApp calls
    // only after the drain: closing them at the stop signal reset requests already on the wire.
    forceCloseConnections: false,
    // No route declares a schema: fastify's default compilers (ajv, fast-json-stringify, 2 MB of heap) are never loaded.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
  };
}

function noSchemas(): never {
  throw new Error('Layover routes declare no schemas');
}

function prepare(app: FastifyInstance, config: LayoverConfig, state: ServingState): void {
  // client_header_timeout: how long a client may take to send its request head.
  app.server.headersTimeout = config.timeouts.clientHeaderMs;
  // Once a stop began, every answer ends its connection: the client's next request opens a new one,
  // which the load balancer gives to a replica that stays. (HTTP/2 has no such header: its sessions
  // get a GOAWAY when the stop begins.) On send, after the error writer cleared the headers it found;
  // a hook, so registry-port listeners routed here get it too.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (state.stopping && request.raw.httpVersionMajor === 1) reply.header('connection', 'close');
    // The ID of the request's log line, for an operator holding a client's error in hand.
    reply.header('x-request-id', request.id);
    done(null, payload);
  });
  registerErrorHandler(app);
  registerRequestGuards(app);
}

/** MAX_CONNECTIONS and MAX_CONNECTIONS_PER_CLIENT, the first lowered (and said so) where the open-file limit could not hold them. */
function connectionCaps(config: LayoverConfig, logger: Logger, listeners: number): ConnectionCaps {
  const { maxPerListener, maxPerClient } = config.connections;
  const openFiles = openFileLimit();
  const lowered = listenerCapWithin(maxPerListener, openFiles, listeners);
  if (lowered !== maxPerListener) {
    // Lowering the default is how it is meant to work on a small limit; lowering the operator's own value deserves a warning.
    const level = maxPerListener === SETTINGS.maxConnections.default ? 'info' : 'warn';
    logger[level]({ maxConnections: maxPerListener, applied: lowered, openFiles, listeners }, 'MAX_CONNECTIONS lowered: every listener at its cap must leave half the open-file limit free');
  }
  return { maxPerListener: lowered, maxPerClient };
}

/** Builds every server Layover runs, without listening (tests listen on port 0). */
export async function buildApp(config: LayoverConfig, deps: AppDependencies = {}): Promise<LayoverApp> {
  const logger = deps.logger ?? createLogger(config.logLevel, undefined, config.logFormat);
  const metrics = deps.metrics ?? new Metrics();
  // One sequence for every listener: an ID names one request of this process.
  const nextRequestId = requestIdGenerator();
  const intercepted = new HostnameSet(config.registries);
  const upstreamResolver = new UpstreamResolver({ servers: config.upstreamDns });
  const upstreamAgent = new UpstreamDispatcher(config, upstreamResolver);
  // Before anything is opened: a missing htpasswd file stops the start. An identity provider's
  // keys are fetched like an upstream: through the real resolvers and the upstream TLS trust.
  const clientAuth = await createClientAuth(config, logger, { dispatcher: upstreamAgent });
  // Likewise a custom domain's own certificate and key that do not fit.
  const certificates = loadCustomCertificates(config.customDomains);
  const { ca, created } = await loadOrCreateCa(config.caDir);
  logger.info({ caDir: config.caDir, fingerprint256: ca.fingerprint256, created }, created ? 'created a new CA' : 'loaded the CA');
  const dns = deps.dns !== undefined ? deps.dns : createDnsServer(config, logger, metrics, intercepted);

  // The default certificate also covers the advertised addresses: mirror clients told https://<address> send no SNI.
  const sni = new SniContexts({ ca, intercepted, defaultName: DOCKER_PROXY_HOST, addresses: config.advertise, certificates, logger, metrics });
  // Node checks header and request timeouts only every connectionsCheckingInterval (30 s by
  // default): a CLIENT_HEADER_TIMEOUT of a few seconds needs a finer check.
  const serverTimeouts = { connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(config.timeouts.clientHeaderMs / 4))) };
  // A connection that has not finished its TLS handshake (a ClientHello included) by then is
  // closed: Node's default of 120 s let idle sockets pile up by the thousand.
  const tlsOptions = { ...sni.serverOptions(), ...serverTimeouts, handshakeTimeout: config.connections.tlsHandshakeMs };
  const common = commonOptions(config, logger, 'https', metrics, nextRequestId);
  // h2 is offered only on request: blobs over HTTP/2 ran at half the speed of
  // HTTP/1.1 at twice the CPU on these machines (see README).
  const https = config.http2
    ? (fastify({ ...common, http2: true, https: { ...tlsOptions, allowHTTP1: true } }) as unknown as FastifyInstance)
    : (fastify({ ...common, https: { ...tlsOptions, ALPNProtocols: ['http/1.1'] } }) as unknown as FastifyInstance);
  const http = config.listen.http ? fastify({ ...commonOptions(config, logger, 'http', metrics, nextRequestId), http: serverTimeouts }) : null;
  const proxy = config.listen.proxy ? fastify({ ...commonOptions(config, logger, 'proxy', metrics, nextRequestId), http: serverTimeouts }) : null;
  const admin = config.admin.listen ? fastify({ ...commonOptions(config, logger, 'admin', metrics, nextRequestId), http: serverTimeouts }) : null;
  const state = new ServingState();
  if (config.http2) state.trackSessions(https.server as unknown as Http2SecureServer);
  // Each listener has caps of its own, so that a flood of 443 leaves /healthz on port 80 answering.
  const caps = connectionCaps(config, logger, [https, http, proxy, admin].filter(Boolean).length + config.registryPorts.length);
  const limitConnections = (name: string, app: FastifyInstance | null, tls: boolean): void =>
    app ? new ConnectionLimits(name, caps, logger as FastifyBaseLogger, metrics).attach(app.server as unknown as NetServer, { tls }) : undefined;
  limitConnections('https', https, true);
  limitConnections('http', http, false);
  limitConnections('proxy', proxy, false);
  limitConnections('admin', admin, false);
  // Not the proxy listener (its CONNECT tunnels carry no request; the connect proxy ends them) nor h2 (sessions get a GOAWAY).
  const silentConnections = new SilentConnections();
  if (!config.http2) silentConnections.attach(https.server as unknown as NetServer, { tls: true });
  for (const plain of [http, admin]) if (plain) silentConnections.attach(plain.server as unknown as NetServer, { tls: false });

  const cache = await BlobCache.open({
    dir: join(config.dataDir, 'cache'),
    maxSize: config.cacheMaxSize,
    logger,
    stallTimeoutMs: config.timeouts.proxyReadMs,
    blobStore: config.blobStore,
    cacheIndex: config.cacheIndex,
    metrics,
  });
  AccessRecords.mergeAcrossReplicas(cache);
  // Also without /metrics (METRICS=false): the status page reads the same series.
  // A wildcard of REGISTRIES lets clients name registries freely: they are counted under the wildcard.
  metrics.useRegistries(intercepted);
  // The cache's size, cap, fills and waiters are read when asked for, never pushed on every change.
  metrics.watchCache(cache);

  prepare(https, config, state);
  registerConnectAuthorityCheck(https);
  await https.register(serviceRoutes, { caCertPem: ca.certPem, state, hosts: SERVICE_HOSTS, setup: setupOptionsFor(config, 'other', proxy?.server) });
  https.decorate('upstream', upstreamAgent);
  await https.register(replyFrom, { undici: upstreamAgent, disableRequestLogging: true });
  https.decorate('storageRedirects', await StorageRedirects.open(config, intercepted));
  // Replicas of a shared index share upstream bearer tokens, sealed under a key derived from the redirect key they share.
  const sharedTokens =
    config.cacheIndex.kind === 'sqlite'
      ? undefined
      : new SharedTokens({
          records: cache,
          secret: https.storageRedirects.derivedKey('upstream tokens'),
          onError: (error) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'upstream tokens: the shared index could not be written (this replica keeps its own)'),
        });
  const upstreamAuth = new UpstreamAuth({
    dispatcher: upstreamAgent,
    credentials: config.credentials,
    logger,
    metrics,
    ...registryHosts(config),
    realmHidden: realmHiddenByDns(config),
    ...(sharedTokens ? { sharedTokens } : {}),
  });
  const dockerHubBudget = new DockerHubBudget({ low: config.dockerHubBudgetLow, logger: logger as FastifyBaseLogger, metrics });
  // One PendingFills for both: a registry's blob GET and a docker.proxy GET of the same digest share a download.
  const fleet = createFleet(config, cache, ca, logger as FastifyBaseLogger);
  const proxyContext = { config, cache, intercepted, pendingFills: new PendingFills(), upstreamAuth, clientAuth, fleet, metrics, dockerHubBudget };
  if (fleet) await https.register(peerBlobRoute, { cache, pendingFills: proxyContext.pendingFills, key: fleet.key });
  await https.register(dockerProxyRoute, proxyContext);
  // Cached manifests and small blobs answered before fastify (HTTP/1.1 only: h2 requests are fastify's).
  const hitPath = deps.hitPath !== false && !config.http2 ? { state, requestId: nextRequestId, logger: logger as FastifyBaseLogger, listener: 'https', silentConnections } : undefined;
  await https.register(registryProxy, { ...proxyContext, hitPath });
  if (http) {
    prepare(http, config, state);
    await http.register(serviceRoutes, { caCertPem: ca.certPem, state, setup: setupOptionsFor(config, 'other', proxy?.server) });
  }
  const access = new AdminAccess({ token: await loadOrCreateAdminToken(config.admin.tokenFile), allowNetworks: config.admin.allowNetworks, clientAuth, group: config.admin.group, hostnames: config.admin.hostnames });
  const operations: OperationsContext = { config, cache, metrics, access, dockerHubBudget, fleet, https, logger: logger as FastifyBaseLogger };
  // The status page is also at https://docker.proxy/, for nodes that reach Layover only by its
  // intercepted names; not with ADMIN_LISTEN, which keeps operations off the listeners clients use.
  if (!admin) await https.register(statusRoutes, { ...operations, hosts: SERVICE_HOSTS });
  if (admin) prepare(admin, config, state);
  const operationsListener = admin ?? http;
  if (operationsListener) {
    if (config.admin.metrics) await operationsListener.register(metricsRoute, operations);
    await operationsListener.register(statusRoutes, operations);
    await operationsListener.register(adminRoutes, operations);
    await operationsListener.register(prefetchRoutes, operations);
  }
  let connectProxy: ConnectProxy | null = null;
  if (proxy) {
    prepare(proxy, config, state);
    await proxy.register(serviceRoutes, { caCertPem: ca.certPem, state, setup: setupOptionsFor(config, 'proxy') });
    const tlsServer = https.server as unknown as InterceptServer;
    connectProxy = createConnectProxy(config, { logger: logger as FastifyBaseLogger, intercepted, tlsServer, tls: sni.serverOptions(), resolver: upstreamResolver, clientAuth, metrics });
    connectProxy.attach(proxy.server);
  }

  const registryPortServers = new RegistryPortServers(https, tlsOptions, config.registryPorts, {
    headersMs: config.timeouts.clientHeaderMs,
    keepAliveMs: config.timeouts.keepaliveMs,
    idleMs: common.connectionTimeout,
  }, (port) => new ConnectionLimits(`registry port ${port}`, caps, logger as FastifyBaseLogger, metrics));
  return { config, logger, ca, https, http, admin, metrics, operations, proxy, connectProxy, dns, cache, upstreamAgent, registryPortServers, state, fleet, silentConnections, prefetchSchedule: null };
}

/** Starts every listener; on a failure, whatever already listens is closed again. */
export async function listenApp(app: LayoverApp): Promise<ListeningAddresses> {
  const { listen } = app.config;
  try {
    // The registry ports first: REGISTRIES fixes them, and a listener below on port 0 could be handed
    // one of them by the OS. Their servers route through the https app, which must be ready.
    await app.https.ready();
    const registryPorts = await app.registryPortServers.listen(listen.https.host);
    await app.https.listen({ host: listen.https.host, port: listen.https.port });
    if (app.http && listen.http) await app.http.listen({ host: listen.http.host, port: listen.http.port });
    if (app.proxy && listen.proxy) await app.proxy.listen({ host: listen.proxy.host, port: listen.proxy.port });
    if (app.admin && app.config.admin.listen) await app.admin.listen({ host: app.config.admin.listen.host, port: app.config.admin.listen.port });
    const dns = app.dns ? (app.dns.address ?? (await app.dns.listen())) : null;
    await app.dns?.answerIntercepted();
    app.state.listening();
    app.prefetchSchedule = startPrefetchSchedule(app.operations);
    forgetEvictedDigests(app);
    return {
      registryPorts,
      https: app.https.server.address() as AddressInfo,
      http: app.http ? (app.http.server.address() as AddressInfo) : null,
      admin: app.admin ? (app.admin.server.address() as AddressInfo) : null,
      proxy: app.proxy ? (app.proxy.server.address() as AddressInfo) : null,
      dns,
    };
  } catch (error) {
    await closeApp(app);
    throw error;
  }
}

/**
 * In the background, once listening: at 100,000 blobs its look-ups held the main thread ~60 ms of a
 * start that waited for it. The start does not wait for its index writes, and a close ends them.
 */
function forgetEvictedDigests({ cache, logger }: LayoverApp): void {
  void new AccessRecords(cache).forgetEvicted().then(
    (forgotten) => forgotten > 0 && logger.info({ forgotten }, 'forgot where evicted digests were seen'),
    (error: unknown) => logger.debug({ err: error }, 'forgetting evicted digests stopped'),
  );
}

export interface CloseOptions {
  /** How long to go on accepting connections after /readyz turned 503 (SHUTDOWN_DRAIN); default none. */
  drainMs?: number;
  /** How long to wait for cache fills whose clients are gone before dropping them; default none. */
  fillWaitMs?: number;
}

/** How often a stop ends connections that arrived without a request while the listeners close. */
const SILENT_CLOSE_POLL_MS = 100;

/** How often a stop looks whether the last fill has finished. */
const FILL_POLL_MS = 50;

/**
 * Stops in the order a load balancer needs: not ready at once; after `drainMs` no new connections
 * and idle keep-alive connections closed (every response since the stop began said `Connection:
 * close`); requests in flight finish; then fills, DNS (other nodes resolve through it until the
 * end, intercepted names no longer), the upstream pool and the cache.
 */
export async function closeApp(app: LayoverApp, { drainMs = 0, fillWaitMs = 0 }: CloseOptions = {}): Promise<void> {
  app.state.stop();
  if (drainMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, drainMs));
    app.logger.info({ drainMs }, 'drain over: accepting no new connections');
  }
  let closed = false;
  // DNS goes on forwarding; intercepted names get SERVFAIL, on which a resolver asks its next server.
  const closing = Promise.allSettled([app.prefetchSchedule?.stop(), app.dns?.holdIntercepted(), app.https.close(), app.http?.close(), app.admin?.close(), app.proxy?.close(), app.connectProxy?.close(), app.registryPortServers.close()]).finally(() => (closed = true));
  // Until the listeners have closed (they stop accepting once their close hooks ran), connections that
  // sent no request are ended: a browser's preconnected socket would hold the stop until the grace ran out.
  while (!closed) {
    app.silentConnections.closeAll();
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, SILENT_CLOSE_POLL_MS))]);
  }
  // A fill belongs to the fill, not to the client that started it: one whose clients left is still
  // worth committing, the next replica to start finds it cached.
  const fillDeadline = performance.now() + fillWaitMs;
  while (app.cache.stats().activeFills > 0 && performance.now() < fillDeadline) await new Promise((resolve) => setTimeout(resolve, FILL_POLL_MS));
  await Promise.allSettled([app.dns?.close(), app.upstreamAgent.close(), app.fleet?.client.close(), app.cache.close()]);
}
