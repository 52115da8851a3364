/**
 * Issue 13's performance targets, as lines under a table: each names the target, the value measured
 * in this run and whether it is met. A run that was not clean (see `interference`) says so itself;
 * a target met in a noisy run is still worth re-checking on a quiet machine.
 */
export interface Target {
  /** What is measured, e.g. `warm 1 GiB, 1 client, vs the best of nginx and distribution`. */
  name: string;
  /** The measured value, already formatted with its unit (`1.04×`, `7.2 ms`). */
  measured: string;
  /** The goal as people read it (`≥ 1.00×`, `≤ 10 ms`). */
  goal: string;
  met: boolean;
}

export function atLeast(name: string, value: number, goal: number, format: (v: number) => string): Target {
  return { name, measured: format(value), goal: `≥ ${format(goal)}`, met: value >= goal };
}

export function atMost(name: string, value: number, goal: number, format: (v: number) => string): Target {
  return { name, measured: format(value), goal: `≤ ${format(goal)}`, met: value <= goal };
}

/** One line per target, for the notes of `printTable`. */
export function targetLines(targets: readonly Target[]): string[] {
  return targets.map((t) => `Target ${t.met ? 'met' : 'NOT MET'}: ${t.name}: ${t.measured} (goal ${t.goal}).`);
}

export const times = (v: number): string => `${v.toFixed(2)}×`;
export const ms = (v: number): string => `${v.toFixed(1)} ms`;
export const seconds = (v: number): string => `${v.toFixed(2)} s`;
export const megabytesRss = (v: number): string => `${Math.round(v)} MB`;
