/**
 * Bash shared by every /setup/* script: logging, the root check, the overrides, an idempotent file
 * writer and Layover's CA in the system trust. `put_file` sets `wrote` instead of returning a status:
 * a function called as an `if` condition runs with `set -e` off, so a failed `mv` there would pass
 * unnoticed.
 *
 * In these TypeScript templates `\${` is bash's `${`.
 */
export function scriptLibrary(caCertPem: string): string {
  return `log() { printf 'layover setup: %s\\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

if [[ \${SKIP_ROOT_CHECK:-0} != 1 && $(id -u) -ne 0 ]]; then
  die 'run this as root, e.g. curl -fsSL URL | sudo bash'
fi

no_proxy_list=\${NO_PROXY_LIST:-localhost,127.0.0.1,::1}
if [[ ! $no_proxy_list =~ ^[A-Za-z0-9.,:*/_-]*$ ]]; then
  die 'NO_PROXY_LIST: expected host names, addresses and networks separated by commas'
fi

wrote=0
pending=''
trap '[[ -z $pending ]] || rm -f -- "$pending"' EXIT

# put_file PATH: standard input becomes the content of PATH, replaced atomically (a rename in the same
# directory), unless PATH holds exactly that already. Sets wrote=1 when it changed PATH, else 0.
put_file() {
  local path=$1
  wrote=0
  pending=$path.layover-new
  cat >"$pending"
  if [[ -f $path ]] && cmp -s -- "$pending" "$path"; then
    rm -f -- "$pending"
    pending=''
    return 0
  fi
  chmod 0644 -- "$pending"
  mv -f -- "$pending" "$path"
  pending=''
  wrote=1
  log "wrote $path"
}

# Layover's CA into the system trust: Debian, Ubuntu and Alpine (update-ca-certificates) or RHEL,
# Fedora and the like (update-ca-trust). Sets ca_changed=1 when the trust changed.
ca_changed=0
install_ca() {
  local dir
  local -a update
  if command -v update-ca-certificates >/dev/null 2>&1; then
    dir=\${CA_DIR:-/usr/local/share/ca-certificates}
    update=(update-ca-certificates)
  elif command -v update-ca-trust >/dev/null 2>&1; then
    dir=\${CA_DIR:-/etc/pki/ca-trust/source/anchors}
    update=(update-ca-trust extract)
  else
    die 'found neither update-ca-certificates (Debian, Ubuntu) nor update-ca-trust (RHEL, Fedora): add the CA from /ca.crt to the system trust by hand'
  fi
  mkdir -p -- "$dir"
  put_file "$dir/layover-ca.crt" <<'LAYOVER_CA'
${caCertPem.trimEnd()}
LAYOVER_CA
  ca_changed=$wrote
  if ((ca_changed)); then
    # Taken out again on a failure, so that the next run sees a change and tries again.
    "\${update[@]}" >&2 || {
      rm -f -- "$dir/layover-ca.crt"
      die "\${update[*]} failed"
    }
  fi
}

# restart UNIT [reload]: systemctl (daemon-reload first with "reload"), unless SKIP_RESTART=1.
restart() {
  if [[ \${SKIP_RESTART:-0} == 1 ]]; then
    log "SKIP_RESTART=1: restart $1 yourself"
  elif ! command -v systemctl >/dev/null 2>&1; then
    log "no systemctl here: restart $1 yourself"
  else
    if [[ \${2:-} == reload ]]; then systemctl daemon-reload; fi
    systemctl restart "$1"
    log "restarted $1"
  fi
}

# restart_if_active UNIT...: restarts those that run (they read the system trust only when they start).
restart_if_active() {
  local unit
  for unit in "$@"; do
    if [[ \${SKIP_RESTART:-0} != 1 ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit"; then
      restart "$unit"
    fi
  done
}
`;
}
