import { isDeepStrictEqual } from 'node:util';
import type { HostPort } from '../config/parsers.js';
import type { Setting } from '../config/settings.js';

const DURATION_UNITS: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];
const SIZE_UNITS: [string, number][] = [['t', 1024 ** 4], ['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024], ['', 1]];

/** The largest unit that divides the value exactly: 600000 ms -> 10m, 32 GiB -> 32g. */
function withUnit(value: number, units: [string, number][]): string {
  const [unit, factor] = units.find(([, f]) => value % f === 0)!;
  return `${value / factor}${unit}`;
}

const isHostPort = (value: unknown): value is HostPort => typeof value === 'object' && value !== null && 'host' in value && 'port' in value;
const hostPort = ({ host, port }: HostPort): string => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** Ways to write a parsed value, the most readable first. */
function candidates(value: unknown): unknown[] {
  if (value === null) return ['off', ''];
  if (typeof value === 'number') return [withUnit(value, DURATION_UNITS), ...(value > 0 && value % 1024 === 0 ? [withUnit(value, SIZE_UNITS)] : []), value, String(value)];
  if (value instanceof RegExp) return [value.source];
  if (isHostPort(value)) return [hostPort(value)];
  if (Array.isArray(value)) return [value.map((item: unknown) => (isHostPort(item) ? hostPort(item) : item))];
  return [value];
}

/**
 * A parsed setting value written back in a form its setting accepts from a flag, the environment or a
 * config file (durations and sizes with units, listeners as ADDR:PORT, regular expressions as source).
 * The form is the first one the setting's own parser reads back as the same value, so whatever a
 * setting's parser is, what this writes loads again unchanged; the help's defaults and `layover config` use it.
 */
export function settingText(setting: Setting<unknown>, value: unknown): unknown {
  const same = (text: unknown): boolean => {
    const back = setting.parse(text);
    return back instanceof RegExp && value instanceof RegExp ? back.source === value.source : isDeepStrictEqual(back, value);
  };
  return candidates(value).find(same) ?? value;
}

/** A one-line rendering of settingText, for the help: a list as its setting reads it from a flag. */
export function settingLine(setting: Setting<unknown>, value: unknown): string {
  const text = settingText(setting, value);
  if (!Array.isArray(text)) return String(text);
  return [' ', ','].map((separator) => text.join(separator)).find((line) => isDeepStrictEqual(setting.parse(line), value)) ?? text.join(',');
}
