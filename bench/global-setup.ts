import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * A build of Layover for the benchmarks alone, outside dist/: a test run that rebuilds dist/ at the
 * same time cannot hand a benchmark half-written files. Dependencies still resolve from the
 * project's node_modules (the build sits below it).
 */
const OUT_DIR = fileURLToPath(new URL('../node_modules/.cache/layover-bench/dist', import.meta.url));
export const BENCH_CLI = `${OUT_DIR}/cli/main.js`;

/** Builds the benchmark copy of Layover, unless LAYOVER_BENCH_CLI names another build to measure. */
export default function setup(): void {
  if (process.env.LAYOVER_BENCH_CLI && process.env.LAYOVER_BENCH_CLI !== BENCH_CLI) return;
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const project = fileURLToPath(new URL('../tsconfig.build.json', import.meta.url));
  execFileSync(process.execPath, [tsc, '-p', project, '--outDir', OUT_DIR], { stdio: 'inherit' });
}
