import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Fill } from '../../cache/blob-cache.js';
import { annotateRequestLog } from '../../log/request-log.js';
import type { Digest } from '../../registry/digest.js';
import { OciError } from '../../registry/oci-errors.js';
import type { RepositoryName } from '../../registry/repository-name.js';
import type { ProxyContext } from '../proxy-context.js';
import { failReply } from '../error-handler.js';
import { clearUpstreamHeaders, type UpstreamResponse } from '../upstream-request.js';
import type { UpstreamTarget } from '../upstream-target.js';
import { isRedirectStatus } from './storage-fetch.js';
import { fillFromStorage, serveFromStorage, type StorageJob } from './storage-fill.js';
import { discardBody } from '../../upstream/read-limited.js';

/** A registry's answer to a blob request that sends the client elsewhere (a storage host). */
export function isBlobRedirect(res: UpstreamResponse): boolean {
  return isRedirectStatus(res.statusCode) && typeof res.headers.location === 'string';
}

export interface BlobRedirect {
  ctx: ProxyContext;
  request: FastifyRequest;
  reply: FastifyReply;
  res: UpstreamResponse;
  target: UpstreamTarget;
  name: RepositoryName;
  digest: Digest;
  /** The digest's pending slot, when this request holds it (a GET miss); absent for HEAD and Range. */
  settle?: (fill: Fill | undefined) => void;
}

/**
 * A 301/302/303/307/308 from the registry for a blob. The redirect itself is never cached or
 * passed on: with REDIRECTS=rewrite the client gets a 307 to a signed docker.proxy URL (which
 * fetches, verifies and caches the blob under its digest); with REDIRECTS=follow Layover follows
 * the chain itself and the client gets the blob. Clients that came through a mirror or a custom
 * domain always get the blob: they may not resolve docker.proxy. The storage host never sees the
 * registry's Authorization: its URL is fetched afresh, without the client's headers.
 */
export function answerBlobRedirect({ ctx, request, reply, res, target, name, digest, settle }: BlobRedirect): void {
  discardBody(res.stream);
  clearUpstreamHeaders(reply);
  const redirects = request.server.storageRedirects;
  let location: URL;
  try {
    // Relative Locations (Google Artifact Registry sends them) are relative to the URL asked for upstream.
    const asked = target.rewrite ? `${target.rewrite.path}${target.rewrite.query ? `?${target.rewrite.query}` : ''}` : request.url;
    location = new URL(String(res.headers.location), `${target.origin}${asked}`);
  } catch (error) {
    settle?.(undefined);
    void reply.send(new OciError('UNAVAILABLE', `${target.registry} redirected the blob to an invalid URL`, { registry: target.registry }, { cause: error, status: 502 }));
    return;
  }
  // A client that reached the registry through a mirror or a custom domain may not resolve docker.proxy.
  const mode = target.rewrite?.followRedirects ? 'follow' : redirects.mode;
  annotateRequestLog(request, { redirect: mode, storage: location.host });
  // A registry at a port of its own is named with it: only at that port is it a registry Layover proxies.
  const job: StorageJob = { digest, registry: target.registry, repo: name, target: location, origin: target.origin };

  if (mode === 'rewrite') {
    settle?.(undefined);
    const url = redirects.signedUrl(request.host, { digest, registry: job.registry, repo: name, target: location.href });
    void reply.code(307).header('location', url).header('cache-control', 'no-store').header('content-length', 0).send();
    return;
  }
  if (settle) void fillFromStorage(ctx, redirects, request, reply, job, settle);
  else serveFromStorage(ctx, redirects, request, reply, job).catch((error: unknown) => failReply(request, reply, error));
}
