import type { LayoverConfig } from '../config/layover-config.js';
import { ConfigError } from '../config/config-error.js';

export interface PrefetchCommandOptions {
  referrers: boolean;
  platform: string | undefined;
}

/** `layover prefetch IMAGE...`: asks the running Layover's admin API to pull the images, showing progress. */
export async function prefetchCommand(_config: LayoverConfig, images: readonly string[], _options: PrefetchCommandOptions): Promise<void> {
  throw new ConfigError(`prefetch ${images.join(' ')}: not available yet`);
}
