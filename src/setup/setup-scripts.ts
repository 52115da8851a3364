import { isIP } from 'node:net';
import { hostsFileLines } from '../dns/hosts-file.js';
import { parseHostname } from '../registry/hostname.js';
import { scriptLibrary } from './script-library.js';

export const SETUP_KINDS = ['systemd', 'containerd', 'podman', 'hosts'] as const;
export type SetupKind = (typeof SETUP_KINDS)[number];

export interface SetupInputs {
  /** `host:port` of the HTTPS proxy (as the node reached it); null when HTTPS_PROXY mode is off. */
  proxy: string | null;
  /** What the /etc/hosts lines point the intercepted names at. */
  addresses: readonly string[];
  /** The intercepted names (`*.suffix` wildcards included: /etc/hosts gets a comment for those). */
  registries: readonly string[];
  caCertPem: string;
}

/** The values are checked again here, next to the text they go into: each must be inert in bash. */
const PROXY = /^(?:[a-z0-9.-]+|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]):\d{1,5}$/;
const PEM = /^(?:-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+$/;

function checkInputs({ proxy, addresses, registries, caCertPem }: SetupInputs): void {
  if (proxy !== null && !PROXY.test(proxy)) throw new RangeError(`setup script: not a proxy address: ${JSON.stringify(proxy)}`);
  for (const address of addresses) if (isIP(address) === 0) throw new RangeError(`setup script: not an IP address: ${JSON.stringify(address)}`);
  for (const name of registries) {
    if (!parseHostname(name.startsWith('*.') ? name.slice(2) : name)) throw new RangeError(`setup script: not a hostname: ${JSON.stringify(name)}`);
  }
  if (!PEM.test(caCertPem.replace(/\r\n/g, '\n'))) throw new RangeError('setup script: the CA is not a PEM certificate');
}

const header = (kind: SetupKind, summary: string[], variables: string): string =>
  [
    '#!/usr/bin/env bash',
    `# Layover /setup/${kind}, generated for this node by Layover; running it again changes nothing`,
    '# unless Layover answers differently. Run it as root: curl -fsSL <this URL> | sudo bash',
    ...summary.map((line) => `# ${line}`),
    `# Variables: ${variables}, SKIP_RESTART=1, SKIP_ROOT_CHECK=1 (for trying it on scratch directories).`,
    'set -euo pipefail',
    '',
  ].join('\n');

/** A systemd drop-in giving UNIT the proxy variables, keeping a foreign http-proxy.conf aside once. */
const unitDropIn = (kind: SetupKind): string => `
# configure_unit UNIT: HTTPS_PROXY and NO_PROXY for UNIT in the drop-in the Docker documentation (and
# the nginx-based registry proxies) use. Sets wrote=1 when it changed.
configure_unit() {
  local dir=\${SYSTEMD_DIR:-/etc/systemd/system}/$1.d
  local file=$dir/http-proxy.conf marker='# Written by Layover (/setup/${kind}).'
  mkdir -p -- "$dir"
  if [[ -f $file ]] && ! grep -qxF "$marker" "$file" && [[ ! -e $file.before-layover ]]; then
    cp -p -- "$file" "$file.before-layover"
    log "kept the former $file as $file.before-layover (systemd reads only *.conf)"
  fi
  put_file "$file" <<LAYOVER_UNIT
$marker
[Service]
Environment="HTTPS_PROXY=$proxy_url" "NO_PROXY=$no_proxy_list"
LAYOVER_UNIT
}
`;

function unitScript(kind: 'systemd' | 'containerd', unit: string, proxy: string, caCertPem: string): string {
  const what = kind === 'systemd' ? 'Docker host' : 'containerd host';
  return `${header(
    kind,
    [
      `Makes this ${what} pull through Layover's HTTPS proxy at ${proxy}: Layover's CA into the system`,
      `trust, HTTPS_PROXY and NO_PROXY in a drop-in for ${unit}, then daemon-reload and a restart of`,
      `${unit}, only when something changed. Layover does not forward plain HTTP, so HTTP_PROXY stays unset.`,
    ],
    'NO_PROXY_LIST (default localhost,127.0.0.1,::1), SYSTEMD_DIR, CA_DIR',
  )}
proxy_url='http://${proxy}'

${scriptLibrary(caCertPem)}${unitDropIn(kind)}
install_ca
configure_unit ${unit}
unit_changed=$wrote
if ((unit_changed)); then
  restart ${unit} reload
elif ((ca_changed)); then
  restart ${unit}
else
  log 'nothing to change: ${unit} already uses Layover at ${proxy}'
fi
`;
}

function podmanScript(proxy: string, caCertPem: string): string {
  return `${header(
    'podman',
    [
      `Makes podman (and buildah, skopeo: everything reading containers.conf) pull through Layover's HTTPS`,
      `proxy at ${proxy}: Layover's CA into the system trust and the proxy variables in [engine] env of a`,
      'containers.conf drop-in, which podman puts into its own environment at every start. While',
      '[containers] http_proxy is true (the default), podman also hands them to the containers it runs.',
    ],
    'NO_PROXY_LIST (default localhost,127.0.0.1,::1), CONTAINERS_CONF_DIR, CA_DIR',
  )}
proxy_url='http://${proxy}'

${scriptLibrary(caCertPem)}
install_ca
conf_dir=\${CONTAINERS_CONF_DIR:-/etc/containers/containers.conf.d}
mkdir -p -- "$conf_dir"
put_file "$conf_dir/50-layover-proxy.conf" <<LAYOVER_CONF
# Written by Layover (/setup/podman).
[engine]
env = ["HTTPS_PROXY=$proxy_url", "NO_PROXY=$no_proxy_list"]
LAYOVER_CONF
if ((wrote || ca_changed)); then
  # podman itself has no daemon; its API service does.
  restart_if_active podman.service
else
  log 'nothing to change: podman already uses Layover at ${proxy}'
fi
`;
}

function hostsScript(inputs: SetupInputs): string {
  const lines = hostsFileLines({ registries: inputs.registries, advertise: inputs.addresses }).trimEnd();
  return `${header(
    'hosts',
    [
      `DNS-hijack mode without Layover's DNS: /etc/hosts lines pointing every intercepted name at`,
      `${inputs.addresses.join(', ')}, in one block between marker lines that a new run replaces, and`,
      `Layover's CA in the system trust (then docker and containerd, if running, are restarted).`,
    ],
    'HOSTS_FILE, CA_DIR',
  )}${scriptLibrary(inputs.caCertPem)}
hosts_file=\${HOSTS_FILE:-/etc/hosts}
begin='# BEGIN Layover (/setup/hosts)'
end='# END Layover (/setup/hosts)'

update_hosts() {
  local new
  if [[ -f $hosts_file ]] && grep -qxF "$begin" "$hosts_file" && ! grep -qxF "$end" "$hosts_file"; then
    die "$hosts_file has the line '$begin' but not '$end': mend it by hand"
  fi
  new=$(mktemp)
  pending=$new
  {
    if [[ -f $hosts_file ]]; then
      awk -v b="$begin" -v e="$end" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' "$hosts_file"
    fi
    printf '%s\\n' "$begin"
    cat <<'LAYOVER_HOSTS'
${lines}
LAYOVER_HOSTS
    printf '%s\\n' "$end"
  } >"$new"
  wrote=0
  if [[ ! -f $hosts_file ]] || ! cmp -s -- "$new" "$hosts_file"; then
    # In place, not by a rename: /etc/hosts is often a bind mount, which a rename cannot replace.
    cat -- "$new" >"$hosts_file"
    wrote=1
    log "wrote $hosts_file"
  fi
  rm -f -- "$new"
  pending=''
}

install_ca
update_hosts
if ((ca_changed)); then
  restart_if_active containerd.service docker.service
elif ((!wrote)); then
  log 'nothing to change: this host already resolves the registries to Layover'
fi
`;
}

/** The bash script /setup/KIND answers with. Throws RangeError for inputs that are not inert in bash. */
export function setupScript(kind: SetupKind, inputs: SetupInputs): string {
  checkInputs(inputs);
  const caCertPem = inputs.caCertPem.replace(/\r\n/g, '\n');
  if (kind === 'hosts') return hostsScript({ ...inputs, caCertPem });
  if (inputs.proxy === null) throw new RangeError(`setup script: /setup/${kind} needs the HTTPS proxy, which is off`);
  switch (kind) {
    case 'systemd':
      return unitScript('systemd', 'docker.service', inputs.proxy, caCertPem);
    case 'containerd':
      return unitScript('containerd', 'containerd.service', inputs.proxy, caCertPem);
    case 'podman':
      return podmanScript(inputs.proxy, caCertPem);
  }
}
