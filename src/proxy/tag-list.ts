import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { readLimited, WHOLE_BODY_DEADLINE_MS } from '../upstream/read-limited.js';
import { failReply } from './error-handler.js';
import type { RegistryProxyContext } from './proxy-context.js';
import { forwardUpstream } from './upstream-request.js';
import type { UpstreamTarget } from './upstream-target.js';

/** A page of tags is small (registries page by `n`); a bigger answer is broken or hostile. */
const MAX_TAG_LIST_BYTES = 8 * 1024 * 1024;

/**
 * `GET /v2/<name>/tags/list` where the client's name differs from the upstream's (a custom domain,
 * a mirror path prefix): the answer's `name` is the upstream's and becomes the client's, so the
 * upstream layout never shows. Pagination links are renamed with the other headers
 * (./upstream-request.ts).
 */
export function sendTagList(ctx: RegistryProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName): FastifyReply {
  annotateRequestLog(request, { registry: target.registry, repo: name, cache: 'pass' });
  return forwardUpstream(request, reply, target, {
    // Layover reads the list: a client's gzip (Go clients take it) would come back as bytes JSON.parse cannot read.
    identity: true,
    auth: ctx.upstreamAuth.for(name),
    onResponse: (res) => {
      if (res.statusCode !== 200 || request.method === 'HEAD') return void reply.send(res.stream);
      renameTagList(res.stream, target, name)
        .then((out) => reply.header('content-length', out.length).header('content-type', 'application/json').send(out))
        .catch((error: unknown) => failReply(request, reply, error));
    },
  });
}

/** The upstream's tag list under the client's name (its own `name` renamed, or the requested one). */
async function renameTagList(stream: Readable, target: UpstreamTarget, name: RepositoryName): Promise<Buffer> {
  const names = target.rewrite!.names;
  const body = await readLimited(stream, MAX_TAG_LIST_BYTES, WHOLE_BODY_DEADLINE_MS);
  if (!body) throw new OciError('UNKNOWN', `the tag list from ${target.registry} is too large`, undefined, { status: 502 });
  let list: { name?: unknown } & Record<string, unknown>;
  try {
    list = JSON.parse(body.toString('utf8')) as typeof list;
  } catch (error) {
    throw new OciError('UNKNOWN', `the tag list from ${target.registry} is not JSON`, undefined, { status: 502, cause: error });
  }
  const own = typeof list.name === 'string' ? names.toClient(list.name) : null;
  return Buffer.from(JSON.stringify({ ...list, name: own ?? names.toClient(name) ?? name }));
}
