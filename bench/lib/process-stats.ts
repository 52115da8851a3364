/**
 * What a server process costs, read from /proc (the sandbox has its own network, not its own PIDs):
 * CPU seconds (utime + stime of /proc/<pid>/stat) and resident memory (VmRSS of /proc/<pid>/status),
 * the latter sampled every 100 ms while a benchmark runs so its peak is seen.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Sandbox } from '../../test/bench/sandbox.js';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User plus system CPU time of `pid` so far, in seconds (all its threads). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

/** The first line of /proc/stat in seconds: user nice system idle iowait irq softirq steal …, all cores together. */
function machineTimes(): number[] {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map((ticks) => Number(ticks) / CLOCK_TICKS);
}

/** Seconds the machine's cores have been busy so far, all of them together: everything but idle and iowait. */
export function machineBusySeconds(): number {
  const times = machineTimes();
  return times.reduce((sum, v) => sum + v, 0) - (times[3] ?? 0) - (times[4] ?? 0);
}

/** User plus system CPU time of all of `pids` so far, in seconds (e.g. nginx's master and workers). */
export function cpuSecondsOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

/** The direct children of `pid` (nginx's workers of its master), from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      children.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // the thread ended while listing
    }
  }
  return children;
}

export interface RssPeak {
  /** Total RSS of the processes at the start. */
  before: number;
  /** The highest total of one sample. */
  peak: number;
  /** The highest RSS of a single process (one nginx worker); equals `peak` for a single process. */
  peakLargest: number;
}

/**
 * Polls VmRSS every `intervalMs` from construction until stop(), of one process or of a group read
 * anew at each sample (nginx's workers): the group's total and its largest member.
 */
export class RssSampler {
  private readonly pids: () => readonly number[];
  private readonly before: number;
  private peak = 0;
  private peakLargest = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(processes: number | (() => readonly number[]), intervalMs = 100) {
    this.pids = typeof processes === 'number' ? () => [processes] : processes;
    this.before = this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Stops polling; returns the RSS before and the highest samples (including one taken now). */
  stop(): RssPeak {
    clearInterval(this.timer);
    this.sample();
    return { before: this.before, peak: this.peak, peakLargest: this.peakLargest };
  }

  /** Takes one sample; returns the group's total RSS now. */
  private sample(): number {
    const each = this.pids().map(rssOrZero);
    const total = each.reduce((sum, v) => sum + v, 0);
    this.peak = Math.max(this.peak, total);
    this.peakLargest = Math.max(this.peakLargest, ...each);
    return total;
  }
}

function rssOrZero(pid: number): number {
  try {
    return rssBytes(pid);
  } catch {
    return 0; // a worker replaced between listing and reading
  }
}

/** The PID of the process in `sandbox` whose command line contains `needle`. */
export function findPid(sandbox: Sandbox, needle: string): number {
  const pids = execFileSync('ip', ['netns', 'pids', sandbox.name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  const found = pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(needle);
    } catch {
      return false;
    }
  });
  if (found.length !== 1) throw new Error(`findPid: ${found.length} processes in ${sandbox.name} match "${needle}"`);
  return found[0]!;
}

/**
 * CPU time the rest of the machine spent while a benchmark ran: all busy time in /proc/stat minus this
 * process (with its reaped children: curl, ab) and the servers still running in the sandbox. Another
 * test run or a build on the same two cores shows up here and means the ratios are not to be trusted.
 * Interrupt and softirq time is left out: on loopback it is mostly the benchmark's own traffic. Kernel
 * writeback of the benchmark's own files counts as "other"; it is small. Hypervisor steal counts.
 */
export class OtherCpu {
  private readonly started = performance.now();
  private readonly before: number;

  constructor(private readonly sandbox: Sandbox) {
    this.before = this.foreign();
  }

  /** Seconds of CPU used by other processes so far, and the wall time elapsed. */
  read(): { cpuSeconds: number; wallSeconds: number } {
    return { cpuSeconds: Math.max(0, this.foreign() - this.before), wallSeconds: (performance.now() - this.started) / 1000 };
  }

  private foreign(): number {
    const times = machineTimes();
    // user nice system idle iowait irq softirq steal: user, nice, system and steal.
    const busy = [0, 1, 2, 7].reduce((sum, i) => sum + (times[i] ?? 0), 0);
    return busy - ownCpuSeconds() - this.sandboxPids().reduce((sum, pid) => sum + cpuOrZero(pid), 0);
  }

  private sandboxPids(): number[] {
    return execFileSync('ip', ['netns', 'pids', this.sandbox.name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  }
}

/** This process's CPU time plus that of its children it has reaped. */
function ownCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / CLOCK_TICKS;
}

function cpuOrZero(pid: number): number {
  try {
    return cpuSeconds(pid);
  } catch {
    return 0; // exited between listing and reading; its time is now in our children's total
  }
}
