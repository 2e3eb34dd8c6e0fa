#!/usr/bin/env bash
# `npm test` runs this first: the system programs the tests drive for real — Debian's Chromium (the
# UI tests, through playwright-core), mosquitto (the external-broker test) and iproute2 (network
# namespaces for the testbed) — installed with apt when missing and running as root; otherwise the
# exact packages are named and the tests do not start (exit 2). `npm start` needs none of them.
set -euo pipefail
need=()
[ -x "${EDGENT_CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-setup: installing ${need[*]} (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates "${need[@]}" >&2
  exit 0
fi
echo "test-setup: the tests need ${need[*]}: install them (Debian/Ubuntu: sudo apt-get install ${need[*]}), or set EDGENT_CHROMIUM to another Chromium, then run npm test again" >&2
exit 2
