import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { BURST_LINES, CoalescingDestination, type LineSink, MAX_PENDING_CHARS, WRITE_INTERVAL_MS } from '../../../src/log/coalescing-destination.js';

/** A sink that records what it is handed, and when it is asked to write it out. */
function recordingSink(): LineSink & { writes: string[]; calls: string[]; destroyed: boolean } {
  const sink = {
    writes: [] as string[],
    calls: [] as string[],
    destroyed: false,
    write(data: string) {
      sink.writes.push(data);
      sink.calls.push('write');
      return true;
    },
    flush(callback?: (error?: Error) => void) {
      sink.calls.push('flush');
      callback?.();
    },
    flushSync() {
      sink.calls.push('flushSync');
    },
  };
  return sink;
}

const line = (n: number): string => `{"n":${n}}\n`;

describe('CoalescingDestination', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  test('past the burst, lines wait for the end of the interval and go together, in order', () => {
    const sink = recordingSink();
    const destination = new CoalescingDestination(sink, -1, 1);
    destination.write(line(1));
    expect(sink.writes).toEqual([line(1)]);
    destination.write(line(2));
    destination.write(line(3));
    expect(sink.writes).toEqual([line(1)]);
    vi.advanceTimersByTime(WRITE_INTERVAL_MS - 1);
    expect(sink.writes).toEqual([line(1)]);
    vi.advanceTimersByTime(1);
    expect(sink.writes).toEqual([line(1), line(2) + line(3)]);
    // A quiet spell: the next line goes at once again.
    vi.advanceTimersByTime(WRITE_INTERVAL_MS * 5);
    destination.write(line(4));
    expect(sink.writes).toEqual([line(1), line(2) + line(3), line(4)]);
  });

  test('a burst of BURST_LINES goes line by line, at once; the next line waits', () => {
    const sink = recordingSink();
    const destination = new CoalescingDestination(sink, -1);
    for (let n = 0; n < BURST_LINES; n++) destination.write(line(n));
    expect(sink.writes).toEqual(Array.from({ length: BURST_LINES }, (_, n) => line(n)));
    destination.write(line(BURST_LINES));
    expect(sink.writes).toHaveLength(BURST_LINES);
    vi.advanceTimersByTime(WRITE_INTERVAL_MS);
    expect(sink.writes.at(-1)).toBe(line(BURST_LINES));
  });

  test('under a steady stream of lines, a burst and one batch per interval, and none lost', () => {
    const sink = recordingSink();
    const destination = new CoalescingDestination(sink, -1);
    const written: string[] = [];
    for (let n = 0; n < 1000; n++) {
      destination.write(line(n));
      written.push(line(n));
      vi.advanceTimersByTime(0.1);
    }
    destination.flushSync();
    // 1000 lines over 100 ms: per interval its burst, line by line, and one batch; not a write per
    // line. Timers come in whole milliseconds, so an interval may end up to 1 ms early.
    const lineCounts = sink.writes.map((data) => data.split('\n').length - 1);
    const batches = lineCounts.filter((count) => count > 1).length;
    expect(batches).toBeLessThanOrEqual(Math.ceil(100 / (WRITE_INTERVAL_MS - 1)));
    let singlesInARow = 0;
    for (const count of lineCounts) {
      singlesInARow = count === 1 ? singlesInARow + 1 : 0;
      expect(singlesInARow).toBeLessThanOrEqual(BURST_LINES);
    }
    expect(sink.writes.length).toBeLessThanOrEqual((BURST_LINES + 1) * Math.ceil(100 / (WRITE_INTERVAL_MS - 1)));
    expect(sink.writes.join('')).toBe(written.join(''));
  });

  test('as much as MAX_PENDING_CHARS waiting goes at once, without waiting for the interval', () => {
    const sink = recordingSink();
    const destination = new CoalescingDestination(sink, -1, 1);
    destination.write(line(0));
    const long = `${'x'.repeat(MAX_PENDING_CHARS / 2)}\n`;
    destination.write(long);
    expect(sink.writes).toHaveLength(1);
    destination.write(long);
    expect(sink.writes).toEqual([line(0), long + long]);
  });

  test('flush and flushSync hand over what waits before the sink writes it out', () => {
    const sink = recordingSink();
    const destination = new CoalescingDestination(sink, -1, 1);
    destination.write(line(1));
    destination.write(line(2));
    const flushed = vi.fn();
    destination.flush(flushed);
    expect(sink.calls).toEqual(['write', 'write', 'flush']);
    expect(sink.writes).toEqual([line(1), line(2)]);
    expect(flushed).toHaveBeenCalledOnce();
    destination.write(line(3));
    destination.write(line(4));
    destination.flushSync();
    expect(sink.calls.slice(3)).toEqual(['write', 'flushSync']);
    expect(sink.writes.at(-1)).toBe(line(3) + line(4));
    // The timer of the waiting line is gone with it: nothing is handed over twice.
    vi.advanceTimersByTime(WRITE_INTERVAL_MS * 2);
    expect(sink.writes.join('')).toBe([1, 2, 3, 4].map(line).join(''));
  });

  test('a sink already closed at exit: what waits is written to the descriptor directly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'layover-coalescing-'));
    const file = join(dir, 'out');
    const fd = openSync(file, 'w');
    try {
      const sink = recordingSink();
      const destination = new CoalescingDestination(sink, fd, 1);
      destination.write(line(1));
      destination.write(line(2));
      sink.destroyed = true;
      destination.flushSync();
      expect(sink.writes).toEqual([line(1)]);
      expect(readFileSync(file, 'utf8')).toBe(line(2));
    } finally {
      closeSync(fd);
    }
  });
});

test('a process that exits right after logging has every line on its stdout (pipe), the waiting ones included', () => {
  const module = fileURLToPath(new URL('../../../dist/log/coalescing-destination.js', import.meta.url));
  const script = `
    import { pino } from 'pino';
    const { CoalescingDestination } = await import(${JSON.stringify(module)});
    const destination = new CoalescingDestination(pino.destination({ dest: 1, minLength: 0 }), 1);
    for (let n = 0; n < 5000; n++) destination.write(JSON.stringify({ n }) + '\\n');
    process.exit(3);
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('../../..', import.meta.url)), maxBuffer: 64 * 1024 * 1024 });
  expect(child.stderr).toBe('');
  expect(child.status).toBe(3);
  const numbers = child.stdout.trim().split('\n').map((text) => (JSON.parse(text) as { n: number }).n);
  expect(numbers).toEqual(Array.from({ length: 5000 }, (_, n) => n));
});
