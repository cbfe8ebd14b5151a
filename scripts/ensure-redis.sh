#!/usr/bin/env bash
# Makes sure redis-server and redis-cli exist for the Redis tests (which start their own
# servers on free loopback ports), and openssl for the TLS test's throwaway certificates.
# Installs Debian's packages only when a binary is missing; set SESSIONKIT_REDIS_SERVER /
# SESSIONKIT_REDIS_CLI to use binaries from elsewhere.
set -euo pipefail
. "$(dirname "$0")/ensure-package.sh"

server="${SESSIONKIT_REDIS_SERVER:-redis-server}"
cli="${SESSIONKIT_REDIS_CLI:-redis-cli}"
packages=()
if ! have "$server" "$cli"; then
  packages+=(redis-server redis-tools)
fi
if ! have openssl; then
  packages+=(openssl)
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi

apt_install ensure-redis \
  "Install Redis 7 (server and cli) and openssl, or set SESSIONKIT_REDIS_SERVER/_CLI." \
  "${packages[@]}"
# The package may start a system service on 6379; the tests never use it.
have "$server" "$cli" openssl
