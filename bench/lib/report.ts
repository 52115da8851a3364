/**
 * The output of a benchmark: a Markdown table (so a run can be pasted into bench/README.md) under a
 * line naming the benchmark, the date and the machine, plus number formatting shared by all of them.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

let busyBefore: string | undefined;

/**
 * Samples how busy the machine is for one second (from /proc/stat) before a benchmark starts; the table
 * shows it. Anything else running on the two cores (a test run, a build) skews every ratio.
 */
/** The note under a table: how much CPU other processes took while the benchmark measured. */
export function interference(other: { cpuSeconds: number; wallSeconds: number }): string {
  const cores = cpus().length;
  const share = Math.round((100 * other.cpuSeconds) / (other.wallSeconds * cores));
  return `Other processes used ${other.cpuSeconds.toFixed(1)} CPU-s (${share}% of the ${cores} cores) during the ${Math.round(other.wallSeconds)} s measured${share > 5 ? ': NOT A CLEAN RUN, ratios are skewed' : ''}.`;
}

export async function sampleMachineLoad(): Promise<void> {
  const read = (): { busy: number; total: number } => {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((sum, v) => sum + v, 0);
    // idle and iowait
    return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
  };
  const first = read();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const second = read();
  busyBefore = `${Math.round((100 * (second.busy - first.busy)) / (second.total - first.total))}%`;
}

export function machine(): string {
  const cpu = cpus();
  const load = busyBefore === undefined ? '' : `, CPU busy before the run: ${busyBefore}`;
  return `${new Date().toISOString().slice(0, 10)}, ${cpu.length} cores (${cpu[0]?.model ?? 'unknown CPU'}), ${Math.round(totalmem() / 1024 ** 3)} GiB RAM, Node ${process.version}${load}`;
}

/** Prints `rows` under `header`, columns padded; numeric-looking cells are right-aligned. */
export function printTable(title: string, header: string[], rows: string[][], notes: string[] = []): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = (cell: string): boolean => /^[\d.,×–\- ]+(MB|s|%)?$/.test(cell) && /\d/.test(cell);
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (numeric(c) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const out = [
    '',
    `### ${title}`,
    `_${machine()}_`,
    '',
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    ...notes.map((n) => `\n${n}`),
    '',
  ];
  console.log(out.join('\n'));
}

export const fixed = (value: number, digits = 2): string => value.toFixed(digits);
/** Decimal megabytes per second, as curl and most tools print them. */
export const mbPerSecond = (bytes: number, seconds: number): number => bytes / 1e6 / seconds;
export const megabytes = (bytes: number): string => `${Math.round(bytes / 1e6)}`;
export const ratio = (value: number, reference: number): string => `${(value / reference).toFixed(2)}×`;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
