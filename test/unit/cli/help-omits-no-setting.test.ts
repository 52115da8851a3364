/**
 * Issue 10, "what a new user hits": `--help` was written by hand and had drifted (no 3128, about fifteen
 * accepted flags missing). It is now generated from the settings table; this test holds it to the table:
 * every setting appears with its flag (or as flag-less), its variable and its default, and every flag
 * the help names is one the command line accepts.
 */
import { describe, expect, it } from 'vitest';
import { configFlagOptions } from '../../../src/config/load-config.js';
import { SETTINGS, flagName, type Setting, type SettingKey } from '../../../src/config/settings.js';
import { settingLine } from '../../../src/cli/setting-values.js';
import { CACHE_USAGE, USAGE } from '../../../src/cli/usage.js';

const settings = Object.entries(SETTINGS) as [SettingKey, Setting<unknown>][];
/** The help's block for one flag: its line and the line under it. */
const block = (flag: string): string => {
  const at = USAGE.search(new RegExp(`^  ${flag}[ ,]`, 'm'));
  return at < 0 ? '' : USAGE.slice(at).split('\n').slice(0, 2).join('\n');
};

describe('layover --help', () => {
  it.each(settings.filter(([, s]) => s.env !== null && !s.noFlag))('lists %s with its flag, variable, expected form and default', (key, s) => {
    const text = block(`--${flagName(key)}`);
    expect(text, `--${flagName(key)} is missing from --help`).not.toBe('');
    expect(text).toContain(s.env!);
    expect(text).toContain(s.expected);
    if (s.default !== undefined) {
      const value = settingLine(s, s.default);
      const shown = text.slice(text.lastIndexOf('default: ') + 'default: '.length);
      expect([value, JSON.stringify(value), ...(value === '' ? ['none'] : [])]).toContain(shown);
    }
  });

  it.each(settings.filter(([, s]) => s.env === null || s.noFlag))('names %s as a setting without a flag', (key, s) => {
    expect(USAGE).not.toMatch(new RegExp(`--${flagName(key)}(?![\\w-])`));
    expect(USAGE).toMatch(new RegExp(`^  ${s.env ?? key}\\b`, 'm'));
  });

  it('names no flag the command line would refuse', () => {
    const accepted = new Set(Object.keys(configFlagOptions()));
    const named = [...USAGE.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(40);
    for (const flag of named) expect(accepted, `--${flag}`).toContain(flag);
  });

  it('names every listener, 3128 (HTTPS_PROXY) included, and the cache commands', () => {
    for (const port of ['53', '443', '80', '3128']) expect(USAGE).toContain(`(${port})`);
    for (const sub of ['stats', 'ls', 'verify', 'prune']) expect(CACHE_USAGE).toContain(`cache ${sub}`);
  });
});
