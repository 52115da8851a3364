import { setFlagsFromString } from 'node:v8';

/**
 * From now on V8 compiles a function to Sparkplug's machine code (its baseline compiler, on a thread
 * of its own) after its first call: by default a function is interpreted for its first eight calls,
 * and then waits in a batch until 4 KB of others' code waits with it. Code that runs once per miss
 * (routing it, creating its fill, fastify's reply) otherwise stays interpreted through a process's
 * first several misses (bench/README.md, twentieth session). Set once listening: the start's code
 * runs once and stays interpreted. `--always-sparkplug` compiles at the first call instead of after
 * it; it cost a cached manifest 2-3 µs more CPU in two A/B runs, and 5-6 MB of RSS at rest when set
 * from the start.
 */
export function tierUpAfterFirstCall(): void {
  setFlagsFromString('--invocation-count-for-feedback-allocation=1');
  setFlagsFromString('--baseline-batch-compilation-threshold=0');
}
