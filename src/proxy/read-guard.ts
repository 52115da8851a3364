import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CachedObject } from '../access/upstream-probe.js';
import { annotateRequestLog } from '../log/request-log.js';
import type { RepositoryName } from '../registry/repository-name.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import type { UpstreamTarget } from './upstream-target.js';

/**
 * Runs `serve` (which sends cached bytes) only once the client may read
 * `object` in `name` (src/access/); otherwise answers the refusal, with the
 * upstream's challenge on a 401 so the client can authenticate and ask again.
 */
export function whenReadable(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, object: CachedObject, serve: () => unknown): FastifyReply {
  ctx.readAccess.check(target, name, object, request.headers.authorization, request.log).then(
    (decision) => {
      if (decision.allowed) {
        annotateRequestLog(request, { access: decision.why });
        return void serve();
      }
      annotateRequestLog(request, { registry: target.registry, repo: name, digest: object.digest, cache: 'denied' });
      const { error } = decision;
      reply.code(error.status).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0');
      if (decision.challenge) reply.header('www-authenticate', decision.challenge);
      void reply.send(JSON.stringify(error.toBody()));
    },
    (error: unknown) => void reply.send(error),
  );
  return reply;
}
