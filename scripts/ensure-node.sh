#!/usr/bin/env bash
# `npm start` and `npm test` run through this: the command runs under a supported Node (22.12 or
# later). On an older one — Debian's Node 20, end of life — Node 24 is fetched from the npm registry
# (scripts/node-setup.sh, once, into .cache/node) and put first on PATH, and the command runs under
# it; nothing else to install. better-sqlite3, built by `npm ci` for the Node that ran it, is rebuilt
# once for this one when it does not load.
set -euo pipefail
cd "$(dirname "$0")/.."
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
minor="$(node -p 'process.versions.node.split(".")[1]' 2>/dev/null || echo 0)"
if [ "$major" -lt 22 ] || { [ "$major" -eq 22 ] && [ "$minor" -lt 12 ]; }; then
  echo "edgent: Node $(node --version 2>/dev/null || echo '(none)') is not supported; running under Node 24 (scripts/node-setup.sh fetches it once into .cache/node)" >&2
  node_bin="$(bash scripts/node-setup.sh | tail -1)"
  export PATH="$node_bin:$PATH"
  [ -d "$node_bin/../include/node" ] && export npm_config_nodedir="$(cd "$node_bin/.." && pwd)"
fi
if ! node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1; then
  echo "edgent: building better-sqlite3 for Node $(node --version) (once)" >&2
  npm rebuild better-sqlite3 --no-audit --no-fund >&2
fi
exec "$@"
