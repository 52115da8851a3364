import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import type { LayoverConfig } from '../config/layover-config.js';
import type { FlagValues } from '../config/load-config.js';
import { SETTINGS, flagName, type Setting, type SettingKey } from '../config/settings.js';
import { settingText } from './setting-values.js';

/** Where `loadConfig` read the configuration from; `layover config` needs them to tell given values from defaults. */
export interface ConfigSources {
  flags: FlagValues;
  env: NodeJS.ProcessEnv;
}

/** Relative paths are resolved against the working directory when loaded: printed absolute, they load the same from anywhere. */
const PATHS: readonly SettingKey[] = ['dataDir', 'caDir', 'upstreamCa', 'htpasswdFile', 'ldapCa', 'redirectKeyFile', 'clientTokenKeyFile'];

/** Defaults the machine decides (load-config.ts): printed as decided, so the file means what ran. */
const MACHINE_DEFAULTS: Partial<Record<SettingKey, (config: LayoverConfig) => unknown>> = {
  caDir: (c) => c.caDir,
  advertise: (c) => c.advertise,
  upstreamDns: (c) => c.upstreamDns,
  dnsAllowRecursion: (c) => c.dnsPolicy.allowRecursion,
  connectAllowNetworks: (c) => c.connectAllowNetworks,
  dnsRateLimitExempt: (c) => c.dnsPolicy.rateLimitExempt,
  peerAddress: (c) => (c.peerAddress ? (c.peerAddress.host.includes(':') ? `[${c.peerAddress.host}]:${c.peerAddress.port}` : `${c.peerAddress.host}:${c.peerAddress.port}`) : 'off'),
};

/** Secret settings whose config-file entries carry the secret in one field, inline or as a reference (`passwordFile`, `passwordEnv`). */
const INLINE_SECRET_FIELD: Partial<Record<SettingKey, string>> = { authRegistries: 'password', clientTokens: 'token' };

function urlHasPassword(value: string): boolean {
  try {
    return new URL(value).password !== '';
  } catch {
    return false;
  }
}

/** The value a setting was given (flag > environment > config file), as given; undefined when it was not. */
function given(key: SettingKey, s: Setting<unknown>, sources: ConfigSources, file: Record<string, unknown>): { value: unknown; from: string } | undefined {
  if (s.env !== null) {
    const flag = sources.flags[flagName(key)];
    if (!s.noFlag && flag !== undefined) return { value: flag, from: `--${flagName(key)}` };
    if (sources.env[s.env] !== undefined) return { value: sources.env[s.env], from: s.env };
  }
  return file[key] === undefined ? undefined : { value: file[key], from: 'the config file' };
}

/**
 * A secret setting as it may be printed: entries that name their secret by reference stay, entries
 * holding it inline go, and so does anything else. Returns what stays and a comment for what went.
 */
function withoutSecrets(key: SettingKey, value: unknown, from: string): { kept?: unknown; note: string[] } {
  // A shared index's URL is a secret only when it carries a password (`sqlite` and `redis://host` are not).
  if (key === 'cacheIndex' && typeof value === 'string' && !urlHasPassword(value)) return { kept: value, note: [] };
  const field = INLINE_SECRET_FIELD[key];
  if (!field || !Array.isArray(value)) return { note: [`${key}: given by ${from} (it holds credentials); give it the same way again`] };
  const kept = value.filter((entry: Record<string, unknown>) => entry[field] === undefined);
  const dropped = value.length - kept.length;
  const note = dropped === 0 ? [] : [`${key}: ${dropped} entr${dropped === 1 ? 'y' : 'ies'} with the ${field} inline not printed; give ${field}File or ${field}Env instead`];
  return { kept, note };
}

/**
 * `layover config`: the effective configuration as a config file that `--config` loads back to the same
 * configuration. Credentials are never printed: settings and entries that hold one inline are left out,
 * with a comment saying so (give them by the environment, or by file or variable references).
 */
export function printConfig(config: LayoverConfig, sources: ConfigSources): string {
  const file = config.configFile ? (parseYaml(readFileSync(config.configFile, 'utf8')) as Record<string, unknown> | null) ?? {} : {};
  const settings: Record<string, unknown> = {};
  const notes: string[] = [];
  for (const [key, s] of Object.entries(SETTINGS) as [SettingKey, Setting<unknown>][]) {
    if (key === 'config') continue;
    const found = given(key, s, sources, file);
    let value = found ? found.value : (MACHINE_DEFAULTS[key]?.(config) ?? s.default);
    if (found && s.secret) {
      const { kept, note } = withoutSecrets(key, found.value, found.from);
      notes.push(...note);
      value = kept;
    }
    if (value === undefined) continue;
    if (PATHS.includes(key) && typeof value === 'string') value = resolve(value);
    settings[key] = found ? value : settingText(s, value);
  }
  const header = [
    '# Layover: the effective configuration (`layover config`); load it with --config FILE.',
    '# Flags and environment variables still take precedence over what is written here.',
    ...(config.configFile ? [`# Read from ${config.configFile}, the environment and the flags.`] : []),
    ...notes.map((note) => `# Not printed: ${note}.`),
  ];
  return `${header.join('\n')}\n${stringify(settings)}`;
}
