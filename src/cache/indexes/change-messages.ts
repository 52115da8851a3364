import { parseDigest, type Digest } from '../../registry/digest.js';
import type { IndexChange } from '../cache-index.js';
import { toEntry } from './index-rows.js';
import { plainError, type ThrottledLog } from './throttled-log.js';

const PUBLISH_FAILED = 'cache index: a change was not published (the other replicas catch up at their next re-read)';

/**
 * Postgres refuses a NOTIFY payload of 8000 bytes or more; a message stays well under that. A record key
 * is at most 2048 characters (the Postgres key column), a row a few hundred, a sha512 digest 135.
 */
export const MAX_MESSAGE_BYTES = 7_000;
const DIGESTS_PER_MESSAGE = 40;

/** The wire form of changes: one JSON object per message, `{ origin, change }`; long removals are split. */
export function encodeChange(change: IndexChange, origin: string): string[] {
  if (change.type !== 'removed') return [JSON.stringify({ origin, change })].filter((message) => Buffer.byteLength(message) <= MAX_MESSAGE_BYTES);
  const messages: string[] = [];
  for (let i = 0; i < change.digests.length; i += DIGESTS_PER_MESSAGE) {
    messages.push(JSON.stringify({ origin, change: { type: 'removed', digests: change.digests.slice(i, i + DIGESTS_PER_MESSAGE) } }));
  }
  return messages;
}

/** Sends a change's messages one by one; a failure is logged (throttled), never thrown: delivery is at most once. */
export async function publishChange(send: (message: string) => Promise<unknown>, change: IndexChange, origin: string, log: { throttled: ThrottledLog; backend: string }): Promise<void> {
  try {
    for (const message of encodeChange(change, origin)) await send(message);
  } catch (error) {
    log.throttled.error({ err: plainError(error), backend: log.backend }, PUBLISH_FAILED);
  }
}

/**
 * A message as another replica (or anything else that can publish on the channel) sent it: hostile until
 * checked. Anything that is not a well-formed change is null and ignored.
 */
export function decodeChange(message: string): { change: IndexChange; origin: string } | null {
  if (Buffer.byteLength(message) > MAX_MESSAGE_BYTES) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { origin, change } = parsed as { origin?: unknown; change?: unknown };
  if (typeof origin !== 'string' || typeof change !== 'object' || change === null) return null;
  const fields = change as { type?: unknown; key?: unknown; digests?: unknown; entry?: unknown };
  switch (fields.type) {
    case 'record-set':
    case 'record-deleted':
      return typeof fields.key === 'string' ? { origin, change: { type: fields.type, key: fields.key } } : null;
    case 'removed': {
      if (!Array.isArray(fields.digests)) return null;
      const digests = fields.digests.map((d) => (typeof d === 'string' ? parseDigest(d) : null));
      return digests.every((d): d is Digest => d !== null) ? { origin, change: { type: 'removed', digests } } : null;
    }
    case 'replayed':
      return { origin, change: { type: 'replayed' } };
    case 'committed': {
      // Checked exactly as a row loaded from the index is.
      const digest = typeof fields.entry === 'object' && fields.entry !== null ? (fields.entry as { digest?: unknown }).digest : undefined;
      const entry = typeof digest === 'string' ? toEntry(digest, fields.entry) : null;
      return entry ? { origin, change: { type: 'committed', entry } } : null;
    }
    default:
      return null;
  }
}
