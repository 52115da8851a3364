import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { BENCH_CLI } from './global-setup.js';

/**
 * The benchmarks: `bench/*.bench-run.ts`, never part of `npm test` (the root config includes only
 * test/**\/*.test.ts). One file at a time, so no benchmark shares the two cores with another, and
 * console output goes straight to the terminal (the tables are the result).
 */
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['bench/**/*.bench-run.ts'],
    globalSetup: ['bench/global-setup.ts'],
    env: { LAYOVER_BENCH_CLI: process.env.LAYOVER_BENCH_CLI ?? BENCH_CLI },
    pool: 'forks',
    fileParallelism: false,
    disableConsoleIntercept: true,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
