#!/usr/bin/env bash
# The npm packages of the client tests (tests/clients: the CloudEvents SDK for
# JavaScript, Redocly's OpenAPI linter, Ajv), installed exactly as
# package-lock.json pins them with `npm ci`, and only when node_modules is
# missing or older than the lock file. Node.js comes from
# scripts/packages-test.txt (Debian's nodejs); npm too, from Debian's npm
# package, unless the installed Node.js brings its own (NodeSource's does,
# and conflicts with Debian's npm).
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"

if ! command -v npm >/dev/null; then
  echo "client-deps: installing npm"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
stamp=node_modules/.package-lock.json
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  echo "client-deps: npm ci in tests/clients"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Debian's syslog-ng (tests/clients/clients_syslogng_test.cpp), unpacked, not
# installed: syslog-ng-core and rsyslog both provide system-log-daemon, so
# apt would remove rsyslog (the other shipper tested) to install it. The
# three packages are unpacked with dpkg-deb into tests/clients/.syslog-ng;
# their libraries come from scripts/packages-test.txt. Only when missing.
syslogng=.syslog-ng
if [[ ! -x $syslogng/usr/sbin/syslog-ng ]]; then
  echo "client-deps: unpacking Debian's syslog-ng into tests/clients/$syslogng"
  debs=$(mktemp -d)
  chmod 755 "$debs"  # apt-get download fetches as the _apt user
  trap 'rm -rf "$debs"' EXIT
  (cd "$debs" && apt-get download -qq syslog-ng-core syslog-ng-mod-http syslog-ng-scl)
  rm -rf "$syslogng.tmp"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$syslogng.tmp"; done
  rm -rf "$syslogng"
  mv "$syslogng.tmp" "$syslogng"
fi
