import { describe, expect, it } from 'vitest';
import { parseDuration, parseSize } from '../../../src/config/units.js';

describe('parseSize (nginx sizes)', () => {
  it.each([
    ['32g', 32 * 1024 ** 3],
    ['512M', 512 * 1024 ** 2],
    ['10k', 10240],
    ['1024', 1024],
    ['1.5g', 1.5 * 1024 ** 3],
    ['2t', 2 * 1024 ** 4],
  ])('%s', (input, bytes) => expect(parseSize(input)).toBe(bytes));
  it.each(['lots', '', 'g', '-1g', '1x', '1 g b'])('rejects %j', (input) => expect(parseSize(input)).toBeNull());
});

describe('parseDuration (nginx times)', () => {
  it.each([
    ['60s', 60_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['60d', 60 * 86_400_000],
    ['300ms', 300],
    ['1h 30m', 5_400_000],
    ['75', 75_000],
    ['1M', 30 * 86_400_000],
  ])('%s', (input, ms) => expect(parseDuration(input)).toBe(ms));
  it.each(['soon', '', '10x', 'm', '1.5h', '-1s'])('rejects %j', (input) => expect(parseDuration(input)).toBeNull());
});
