import * as parse from '../config/parsers.js';
import { SETTINGS, flagName, type Setting, type SettingKey } from '../config/settings.js';
import { settingLine } from './setting-values.js';

const COMMANDS = `Usage: layover [command] [options]

Commands:
  serve              run the proxy (default): DNS (53), HTTPS (443), HTTP (80), HTTPS_PROXY (3128),
                     and a TLS listener for each registry configured with a port (REGISTRIES host:port)
  ca                 print the CA certificate (created on first use)
  coredns [--k8s]    print the CoreDNS stanza, or with --k8s the kube-system ConfigMap
  hosts              print /etc/hosts lines for the intercepted names
  config             print the effective configuration as a config file for --config
                     (credentials are left out, and said where to give them)
  containerd-config [--server URL] [--ca FILE|none] [--dir DIR]
                     containerd hosts.toml files using Layover as a mirror (?ns=)
  registries-conf [--server HOST]
                     registries.conf mirror entries for podman, CRI-O, skopeo
  cache              the blob cache; \`layover cache\` lists its commands
  prefetch IMAGE... [--platform OS/ARCH] [--referrers]
                     pull images into the cache (all platforms unless --platform), through the
                     running Layover's admin API
  help               print this text (also --help; --version prints the version)
`;

export const CACHE_USAGE = `Usage: layover cache <command> [options]

While Layover runs, these go through its admin API (ADMIN_LISTEN, else the HTTP listener, with the
token in ADMIN_TOKEN_FILE); while it is stopped, they work on the data directory. On a shared cache
(CACHE_INDEX redis or postgres) they also work beside running replicas: prune, verify and purge act
for the fleet.
  cache stats                    totals: entries, bytes, the configured maximum, pinned bytes
  cache ls                       every blob, most recently used first
  cache verify                   re-hash every blob; remove the ones that do not match
  cache prune [--max-size SIZE]  evict least recently used blobs down to SIZE (default:
                                 CACHE_MAX_SIZE); pinned blobs stay
  cache purge SCOPE...           remove what SCOPE covers: its blobs, tag and access records;
                                 pinned blobs, blobs being downloaded and blobs another image
                                 needs stay (the answer says which; --force removes the latter)
  cache pin SCOPE...             never evict what SCOPE covers, now and once it is cached
  cache unpin SCOPE...           remove that pin

SCOPE: sha256:<digest> (a blob, or an image by its manifest), or registry[/repository[:tag]],
e.g. docker.io/library/alpine:3.20, quay.io/org/app, ghcr.io. Docker Hub is docker.io.

Lines for a person on a terminal; YAML (ls: tab-separated rows) otherwise.
The options of \`layover --help\` apply too (--data-dir, --config).
`;

/** Defaults the machine decides at start (load-config.ts), described instead of shown. */
const MACHINE_DEFAULTS: Partial<Record<SettingKey, string>> = {
  caDir: 'DATA_DIR/ca',
  advertise: "this host's addresses",
  upstreamDns: 'the resolvers in /etc/resolv.conf',
  dnsAllowRecursion: "loopback, private (RFC 1918, RFC 6598), link-local, ULA and this host's networks",
  dnsRateLimitExempt: "loopback and this host's networks",
  connectAllowNetworks: 'those of DNS_ALLOW_RECURSION',
  redirectKeyFile: 'DATA_DIR/redirect.key',
  clientTokenKeyFile: 'DATA_DIR/client-token-key.pem',
  peerAddress: "this host's address at the HTTPS port (shared index only)",
  adminTokenFile: 'DATA_DIR/admin.token (created when missing)',
};

/** What a flag's value looks like, from the form its setting expects. */
function metavar(s: Setting<unknown>): string {
  if (s.expected.startsWith('a duration')) return 'DURATION';
  if (s.expected.startsWith('a size')) return 'SIZE';
  if (s.expected.startsWith('a number')) return 'N';
  if (s.expected.startsWith('ADDR:PORT')) return s.expected.includes('or off') ? 'ADDR:PORT|off' : 'ADDR:PORT';
  if (s.expected.includes('path')) return 'PATH';
  if (s.expected.includes('URL')) return 'URL';
  return 'VALUE';
}

const entries = Object.entries(SETTINGS) as [SettingKey, Setting<unknown>][];
const hasFlag = (s: Setting<unknown>): boolean => s.env !== null && !s.noFlag;

function defaultText(key: SettingKey, s: Setting<unknown>): string {
  if (MACHINE_DEFAULTS[key]) return MACHINE_DEFAULTS[key];
  if (s.default === undefined) return 'none';
  const text = settingLine(s, s.default);
  // Quoted only where the value's edges would be lost: a separator that is a space.
  return text === '' ? 'none' : text.trim() === text ? text : JSON.stringify(text);
}

/** One option: the flag and its variable, then what it expects and its default. Generated from SETTINGS, so it cannot drift. */
function option(key: SettingKey, s: Setting<unknown>): string {
  const flag = s.parse === parse.boolean ? `--${flagName(key)}, --no-${flagName(key)}` : `--${flagName(key)} ${metavar(s)}`;
  return `  ${flag.padEnd(44)} ${s.env}\n      ${s.expected}; default: ${defaultText(key, s)}\n`;
}

const withoutFlag = entries.filter(([, s]) => !hasFlag(s));

export const USAGE = `${COMMANDS}
Options (each also an environment variable, and a config-file key named like the flag in camelCase;
precedence: flags > environment > config file > defaults; \`layover config\` prints a config file):
${entries.filter(([, s]) => hasFlag(s)).map(([key, s]) => option(key, s)).join('')}
No flag, so that credentials stay out of \`ps\` and shell history:
${withoutFlag.filter(([, s]) => s.env !== null).map(([key, s]) => `  ${s.env} (config file: ${key})\n      ${s.expected}\n`).join('')}
Config file only (lists of structured entries; see README):
${withoutFlag.filter(([, s]) => s.env === null).map(([key, s]) => `  ${key}\n      ${s.expected}\n`).join('')}`;
