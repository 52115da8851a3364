import type { FastifyInstance } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import type { ProxyContext } from './proxy-context.js';
import { DOCKER_PROXY_BLOB_PREFIX, type VerifyFailure } from './redirects/signed-url.js';
import { serveFromStorage } from './redirects/storage-fill.js';

/** docker.proxy, with an optional port: the name signed storage redirects point at. */
export const DOCKER_PROXY_HOSTS = /^docker\.proxy(:\d+)?$/i;

const REFUSALS: Record<VerifyFailure, string> = {
  unsigned: 'docker.proxy serves signed storage redirects only, and this URL is not signed',
  malformed: 'this docker.proxy URL is malformed',
  'bad-signature': 'the signature of this docker.proxy URL does not match: it was altered or signed with another key',
  expired: 'this docker.proxy URL has expired: pull again to get a fresh one',
};

/**
 * GET/HEAD `https://docker.proxy/layover/blobs/<digest>?registry&repo&expires&target&sig`, where
 * REDIRECTS=rewrite sends clients instead of to a registry's storage host. Only URLs Layover signed
 * and that have not expired are served (docker.proxy is no open proxy): from the cache when the
 * digest is there, else by fetching the signed target (which the address policy still guards),
 * verifying it against the digest and caching it, so the next pull of that blob is a plain hit.
 *
 * `https://docker.proxy/token`, Layover's token service for its own clients, is routed like the
 * same path on its other own names (src/proxy/request-target.ts, registry-proxy.ts).
 */
export async function dockerProxyRoute(app: FastifyInstance, ctx: ProxyContext): Promise<void> {
  app.route<{ Params: { digest: string } }>({
    method: ['GET', 'HEAD'],
    url: `${DOCKER_PROXY_BLOB_PREFIX}:digest`,
    constraints: { host: DOCKER_PROXY_HOSTS },
    handler: async (request, reply) => {
      const query = new URLSearchParams(request.url.split('?')[1] ?? '');
      const verified = request.server.storageRedirects.verify(request.params.digest, query);
      if (typeof verified === 'string') {
        annotateRequestLog(request, { redirect: 'refused', reason: verified });
        throw new OciError('DENIED', REFUSALS[verified], { reason: verified });
      }
      const { digest, registry, repo } = verified;
      annotateRequestLog(request, { registry, repo, digest });
      if (!request.server.storageRedirects.proxies(registry)) throw new OciError('DENIED', `${registry} is no longer a registry Layover proxies`);
      let target: URL;
      try {
        target = new URL(verified.target);
      } catch {
        throw new OciError('DENIED', REFUSALS.malformed, { reason: 'malformed' });
      }
      // `host:port` (a registry at a port of its own) is its own origin; a bare name is looked up (Docker Hub's aliases).
      const origin = registry.includes(':') ? `https://${registry}` : undefined;
      await serveFromStorage(ctx, request.server.storageRedirects, request, reply, { digest, registry, repo, target, ...(origin ? { origin } : {}) });
      return reply;
    },
  });
}
