import { request, type Dispatcher } from 'undici';
import type { Secret } from '../../config/secret.js';
import { UpstreamAuthError } from './auth-error.js';
import { type Challenge, parseChallenges, preferredChallenge } from './challenge.js';
import type { TokenAnswer } from './token-cache.js';
import { readLimited, WHOLE_BODY_DEADLINE_MS } from '../read-limited.js';

/** Token answers and pings are small; anything bigger is not what we asked for. */
const MAX_BODY = 1024 * 1024;

/**
 * A token answer or ping body, at most `limit` bytes (null when larger), whole within the deadline of
 * bodies read whole (a realm dripping its answer would hold the pull waiting for the token).
 */
export const readBounded = (body: Dispatcher.ResponseData['body'], limit = MAX_BODY): Promise<Buffer | null> => readLimited(body, limit, WHOLE_BODY_DEADLINE_MS);

export const basicAuthorization = (username: string, password: Secret): string =>
  `Basic ${Buffer.from(`${username}:${password.reveal()}`).toString('base64')}`;

/**
 * How `origin` wants to be authenticated: the challenge its `/v2/` answers without credentials
 * (Bearer preferred over Basic when both are offered), or null when it answers without one;
 * `settled` is false when the answer (5xx, 404) says nothing either way. Through our dispatcher:
 * our resolver, our trust.
 */
export async function discoverChallenge(dispatcher: Dispatcher, origin: string): Promise<{ challenge: Challenge | null; settled: boolean }> {
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${origin}/v2/`, { dispatcher, method: 'GET', headers: { 'user-agent': 'layover' } });
  } catch (error) {
    throw new UpstreamAuthError('unreachable', `${origin} is unreachable`, undefined, { cause: error });
  }
  await res.body.dump({ limit: MAX_BODY }).catch(() => undefined);
  if (res.statusCode === 401) return { challenge: preferredChallenge(parseChallenges(res.headers['www-authenticate'])), settled: true };
  return { challenge: null, settled: res.statusCode >= 200 && res.statusCode < 300 };
}

export interface TokenRequest {
  realm: URL;
  service?: string;
  scope?: string;
  credential?: { username: string; password: Secret };
}

/** GET realm?service=&scope= (with Basic credentials if any), as the token spec says; through our dispatcher. */
export async function fetchToken(dispatcher: Dispatcher, req: TokenRequest): Promise<TokenAnswer> {
  const url = new URL(req.realm);
  if (req.service) url.searchParams.set('service', req.service);
  if (req.scope) url.searchParams.set('scope', req.scope);
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'layover' };
  if (req.credential) headers.authorization = basicAuthorization(req.credential.username, req.credential.password);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, { dispatcher, method: 'GET', headers });
  } catch (error) {
    if (error instanceof UpstreamAuthError) throw error; // a guarded realm's refusal
    throw new UpstreamAuthError('unreachable', `token endpoint ${url.host} is unreachable`, undefined, { cause: error });
  }
  const body = await readBounded(res.body).catch(() => null);
  if (res.statusCode === 401 || res.statusCode === 403) {
    throw new UpstreamAuthError('rejected', `token endpoint ${url.host} answered ${res.statusCode}`, res.statusCode);
  }
  if (res.statusCode !== 200 || !body) throw new UpstreamAuthError('invalid', `token endpoint ${url.host} answered ${res.statusCode}`, res.statusCode);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new UpstreamAuthError('invalid', `token endpoint ${url.host} answered no JSON`);
  }
  // `null`, a number, a list: JSON, but no answer of a token endpoint.
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UpstreamAuthError('invalid', `token endpoint ${url.host} answered no JSON object`);
  const json = parsed as Record<string, unknown>;
  const token = typeof json.token === 'string' && json.token ? json.token : json.access_token;
  if (typeof token !== 'string' || !token) throw new UpstreamAuthError('invalid', `token endpoint ${url.host} answered without a token`);
  return {
    token,
    ...(typeof json.expires_in === 'number' ? { expiresIn: json.expires_in } : {}),
    ...(typeof json.issued_at === 'string' ? { issuedAt: json.issued_at } : {}),
  };
}
