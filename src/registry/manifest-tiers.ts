import type { LayoverConfig } from '../config/layover-config.js';

/**
 * How long a manifest fetched by `tag` stays fresh, as the nginx-based proxies
 * define it: the first tier whose regex matches the start of the tag, else the
 * default time. (Their nginx `location ~ ^/v2/(.*)/manifests/REGEX` anchors the
 * regex at the tag's start and not at its end.)
 */
export function tagTtlMs(tag: string, manifestCache: LayoverConfig['manifestCache']): number {
  for (const tier of manifestCache.tiers) {
    const match = tier.pattern.exec(tag);
    if (match && match.index === 0) return tier.ttlMs;
  }
  return manifestCache.defaultTtlMs;
}
