import type { FastifyInstance, FastifyReply } from 'fastify';
import type { OperationsContext } from '../admin/operations-context.js';
import { StatusBoard } from './status-board.js';
import { CONTENT_SECURITY_POLICY, renderStatusPage } from './status-page.js';
import { statusView } from './status-view.js';

/** Headers of both answers: never cached, never framed, never sniffed into something else. */
function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer');
}

/**
 * The status page at `/` and its numbers at `/status.json` (what the page's script refreshes from).
 * With client authentication on, both are for admins only (`access.guard('view')`): they name
 * what was pulled. `hosts` limits them to Layover's own names on the TLS listener.
 */
export async function statusRoutes(app: FastifyInstance, context: OperationsContext & { hosts?: RegExp }): Promise<void> {
  const board = StatusBoard.for(context);
  board.retain();
  const saveFailed = (error: unknown): void => context.logger.warn({ err: error }, 'status page: saving its history at close failed');
  // Saved as the close begins too: a connection a browser opened and never used (a preconnect)
  // holds the server's close, and a stop that runs into its grace period never gets to onClose.
  app.addHook('preClose', async () => board.save().catch(saveFailed));
  app.addHook('onClose', async () => board.release().catch(saveFailed));
  const options = { preHandler: context.access.guard('view'), ...(context.hosts ? { constraints: { host: context.hosts } } : {}) };

  app.get('/', options, async (_request, reply) => {
    const page = renderStatusPage(statusView(await board.summary()));
    return secure(reply).header('content-type', 'text/html; charset=utf-8').header('content-security-policy', CONTENT_SECURITY_POLICY).send(page);
  });
  app.get('/status.json', options, async (_request, reply) => {
    return secure(reply).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(statusView(await board.summary())));
  });
}
