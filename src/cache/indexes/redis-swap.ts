import type { EvalScript } from './redis-lease.js';
import type { RowSwap, StoredRow, SwapRow } from './row-swap.js';

/**
 * A row's version is the SHA-1 of its bytes, taken by Redis: the text node-redis hands over is decoded
 * as UTF-8, so bytes that are not would never compare equal sent back. A key of another type (not
 * ours) reads as no row, as MGET reads it; SET replaces it.
 */
const READ = `local rows = {}
for i = 1, #KEYS do
  local stored = redis.pcall('GET', KEYS[i])
  if type(stored) == 'string' then
    rows[2 * i - 1] = stored
    rows[2 * i] = redis.sha1hex(stored)
  else
    rows[2 * i - 1] = false
    rows[2 * i] = false
  end
end
return rows`;

/**
 * One script for a batch: Redis runs it without interleaving any other command, so each row's check
 * and SET are one step. Per row two arguments: the version ('' for no row), then the text.
 */
const WRITE = `local written = {}
for i = 1, #KEYS do
  local stored = redis.pcall('GET', KEYS[i])
  local version = ''
  if type(stored) == 'string' then version = redis.sha1hex(stored) end
  if version == ARGV[2 * i - 1] then
    redis.call('SET', KEYS[i], ARGV[2 * i])
    written[i] = 1
  else
    written[i] = 0
  end
end
return written`;

/** Compare-and-set on the index's Redis, keys under `prefix` (as @keyv/redis stores them). */
export function redisRowSwap(evalScript: EvalScript, prefix: string): RowSwap {
  return {
    async read(keys) {
      const answer: unknown = await evalScript(READ, { keys: keys.map((key) => prefix + key), arguments: [] });
      if (!Array.isArray(answer) || answer.length !== 2 * keys.length) throw new Error('Redis answered the read script with something else than two values per row');
      return keys.map((_, i): StoredRow | null => {
        const [text, version]: unknown[] = [answer[2 * i], answer[2 * i + 1]];
        return typeof text === 'string' && typeof version === 'string' ? { text, version } : null;
      });
    },
    async write(rows: readonly SwapRow[]) {
      const answer: unknown = await evalScript(WRITE, {
        keys: rows.map(({ key }) => prefix + key),
        arguments: rows.flatMap(({ version, text }) => [version ?? '', text]),
      });
      if (!Array.isArray(answer) || answer.length !== rows.length) throw new Error('Redis answered the compare-and-set script with something else than a flag per row');
      return answer.map((flag) => flag === 1);
    },
  };
}
