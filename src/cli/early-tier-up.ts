import { setFlagsFromString } from 'node:v8';

/**
 * From now on V8 gives a function its feedback vector at its first call instead of its eighth, and
 * queues it for Sparkplug (V8's baseline compiler, on a thread of its own) then: its next calls run
 * machine code once the queue holds 4 KB of code. Code that runs once per miss (routing it, creating
 * its fill, fastify's reply) otherwise stays interpreted through a process's first several misses:
 * Layover's own share of a cold 1 GiB download's first byte was 3.3-6.7 ms in four runs, 1.8 and
 * 2.3 ms with this (bench/README.md, twentieth session). Set once listening: the start's code runs
 * once and stays interpreted. Compiling each function as it is queued (a batch threshold of 0), or
 * at its first call (`--always-sparkplug`), helped the misses as much but cost a cached manifest
 * 1-3 µs more CPU; `--always-sparkplug` from the start cost 5-6 MB of RSS at rest.
 */
export function tierUpAfterFirstCall(): void {
  setFlagsFromString('--invocation-count-for-feedback-allocation=1');
}
