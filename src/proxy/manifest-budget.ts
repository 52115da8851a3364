import type { FastifyBaseLogger } from 'fastify';
import { upstreamFailureCause } from '../metrics/upstream-failure-cause.js';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { parseDigest, type Digest } from '../registry/digest.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { UpstreamAuthError } from '../upstream/auth/auth-error.js';
import { clientBringsCredentials } from '../upstream/auth/upstream-auth.js';
import { ANONYMOUS_ACCOUNT, CLIENT_ACCOUNT, retryAfterSeconds } from '../upstream/docker-hub-budget.js';
import { layoverAuthorizes, type UpstreamCaller } from './layover-authorizes.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import type { UpstreamTarget } from './upstream-target.js';

type Headers = Record<string, string | string[] | undefined>;

/** Docker Hub's registry API, whichever of its names the client used (upstream-target.ts maps them all here). */
const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';

/**
 * Whether `target` counts pulls against a budget: Docker Hub, whose every manifest GET is a pull
 * and whose HEADs are free. Only there are tags revalidated with a HEAD first: elsewhere a GET costs
 * nothing more than a HEAD, and the HEAD would add a round trip to every miss.
 */
export function countsPulls(target: UpstreamTarget): boolean {
  return new URL(target.origin).hostname === DOCKER_HUB_REGISTRY;
}

/** Whose budget an upstream request spends, and the Authorization it goes with. */
export interface UpstreamIdentity {
  /** The configured credential's name (`user@registry`, never its secret), `client` or `anonymous` (see BudgetReading). */
  readonly account: string;
  readonly authorization: string | undefined;
}

/**
 * The identity a request for `name` goes upstream with, as forwardUpstream would choose it: the
 * client's own credentials (account `client`: Layover cannot tell whose they are), else Layover's
 * configured credential or anonymous token where Layover manages authorization, else none.
 */
export async function upstreamIdentity(ctx: ProxyContext, target: UpstreamTarget, name: RepositoryName, caller: UpstreamCaller): Promise<UpstreamIdentity> {
  if (clientBringsCredentials(caller.authorization)) return { account: CLIENT_ACCOUNT, authorization: caller.authorization };
  if (!layoverAuthorizes(ctx.upstreamAuth, target, caller)) return { account: ANONYMOUS_ACCOUNT, authorization: undefined };
  const grant = await ctx.upstreamAuth.authorize(target.origin, ctx.upstreamAuth.for(name), caller.authorization);
  return { account: grant.credential ?? ANONYMOUS_ACCOUNT, authorization: grant.header };
}

/** Records an upstream answer's budget headers (a 429 exhausts the account); nothing for other registries. */
export function observeBudget(ctx: ProxyContext, target: UpstreamTarget, account: string, status: number, headers: Headers): void {
  if (!ctx.dockerHubBudget || !countsPulls(target)) return;
  if (status === 429) ctx.dockerHubBudget.observeRefusal(account, headers);
  else ctx.dockerHubBudget.observe(account, headers);
}

/** The account a finished request spent, found after the fact; a failure only costs the reading. */
export function observeBudgetLater(ctx: ProxyContext, target: UpstreamTarget, name: RepositoryName, caller: UpstreamCaller, status: number, headers: Headers, log: FastifyBaseLogger): void {
  if (!ctx.dockerHubBudget || !countsPulls(target)) return;
  upstreamIdentity(ctx, target, name, caller)
    .then(({ account }) => observeBudget(ctx, target, account, status, headers))
    .catch((error: unknown) => log.debug({ err: error, registry: target.registry }, 'Docker Hub budget: no account for an answer'));
}

/** An upstream's 429 as Layover answers it: TOOMANYREQUESTS with its Retry-After, if that is one. */
export function tooManyRequests(target: UpstreamTarget, headers: Headers): OciError {
  const retryAfter = headers['retry-after'];
  const valid = typeof retryAfter === 'string' && retryAfterSeconds(retryAfter, Date.now()) !== null;
  return new OciError('TOOMANYREQUESTS', `upstream registry ${target.registry} is rate-limiting pulls`, undefined, valid ? { headers: { 'retry-after': retryAfter.trim() } } : undefined);
}

/** What a HEAD of a tag told: its digest, a rate limit, no answer at all, or anything else (the GET path handles it). */
export type TagHead =
  | { readonly kind: 'digest'; readonly digest: Digest }
  | { readonly kind: 'limited'; readonly error: OciError }
  | { readonly kind: 'unreachable'; readonly error: Error }
  | { readonly kind: 'other'; readonly status: number };

export interface TagHeadRequest {
  readonly ctx: ProxyContext;
  readonly dispatcher: Dispatcher;
  readonly target: UpstreamTarget;
  readonly name: RepositoryName;
  readonly tag: string;
  /** The client's Accept: the digest a tag resolves to depends on it (an index, or one manifest). */
  readonly accept: string | undefined;
  readonly caller: UpstreamCaller;
}

/**
 * HEAD of a tag upstream, which Docker Hub does not count as a pull: the digest the tag names now
 * (Docker-Content-Digest), and the budget headers of the answer, recorded.
 */
export async function headTag(asked: TagHeadRequest): Promise<TagHead> {
  const { ctx, dispatcher, target, name, tag, accept } = asked;
  let identity: UpstreamIdentity;
  try {
    identity = await upstreamIdentity(ctx, target, name, asked.caller);
  } catch (error) {
    if (error instanceof UpstreamAuthError && error.kind === 'unreachable') return { kind: 'unreachable', error: error.cause instanceof Error ? error.cause : error };
    // A refusal or a broken realm: the GET path reports it as it always has.
    return { kind: 'other', status: 0 };
  }
  const headers: Record<string, string> = { 'user-agent': 'layover', 'accept-encoding': 'identity' };
  if (accept) headers.accept = accept;
  if (identity.authorization) headers.authorization = identity.authorization;
  let res: Dispatcher.ResponseData;
  // Counted as every upstream request is: these HEADs are most of a Docker Hub tag's traffic now.
  const started = performance.now();
  try {
    res = await undiciRequest(`${target.origin}/v2/${name}/manifests/${encodeURIComponent(tag)}`, { dispatcher, method: 'HEAD', headers });
  } catch (error) {
    ctx.metrics?.upstreamFailed(target.registry, upstreamFailureCause(error));
    return { kind: 'unreachable', error: error as Error };
  }
  ctx.metrics?.upstreamAnswered(target.registry, (performance.now() - started) / 1000, res.statusCode);
  await res.body.dump().catch(() => undefined);
  observeBudget(ctx, target, identity.account, res.statusCode, res.headers);
  if (res.statusCode === 429) return { kind: 'limited', error: tooManyRequests(target, res.headers) };
  const digestHeader = res.headers['docker-content-digest'];
  const digest = res.statusCode === 200 && typeof digestHeader === 'string' ? parseDigest(digestHeader.trim()) : null;
  return digest ? { kind: 'digest', digest } : { kind: 'other', status: res.statusCode };
}
