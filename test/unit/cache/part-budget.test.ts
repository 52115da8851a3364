/**
 * The room for S3 part buffers (PartBudget): granted in the order asked, an abandoned wait takes
 * nothing and leaves its place to the next, a release counts once, and the byte counter tests read.
 */
import { describe, expect, it } from 'vitest';
import { PartBudget } from '../../../src/cache/blob-stores/part-budget.js';

describe('PartBudget', () => {
  it('grants room in the order asked, once some is released', async () => {
    const budget = new PartBudget(2, 10);
    const never = new AbortController().signal;
    const first = await budget.take(never);
    const second = await budget.take(never);
    const granted: string[] = [];
    const third = budget.take(never).then((release) => (granted.push('third'), release));
    const fourth = budget.take(never).then((release) => (granted.push('fourth'), release));
    expect(budget.usage).toMatchObject({ partsTaken: 2, waiting: 2 });
    first!();
    // Released twice: the room comes back once.
    first!();
    (await third)!();
    second!();
    (await fourth)!();
    expect(granted).toEqual(['third', 'fourth']);
    expect(budget.usage).toMatchObject({ partsTaken: 0, waiting: 0 });
  });

  it('lets a wait be abandoned: it takes nothing, and the next in line gets the room', async () => {
    const budget = new PartBudget(1, 10);
    const held = await budget.take(new AbortController().signal);
    const abandoned = new AbortController();
    const waiting = budget.take(abandoned.signal);
    const next = budget.take(new AbortController().signal);
    abandoned.abort();
    expect(await waiting).toBeNull();
    held!();
    const release = await next;
    expect(release).toBeTypeOf('function');
    expect(budget.usage).toMatchObject({ partsTaken: 1, waiting: 0 });
    release!();
    expect(await budget.take(abandoned.signal)).toBeNull();
    expect(budget.usage.partsTaken).toBe(0);
  });

  it('counts the bytes held and their peak', () => {
    const budget = new PartBudget(1, 10);
    budget.hold(7);
    budget.hold(3);
    budget.letGo(10);
    expect(budget.usage).toMatchObject({ bufferedBytes: 0, peakBytes: 10 });
    budget.resetPeak();
    expect(budget.usage.peakBytes).toBe(0);
  });
});
