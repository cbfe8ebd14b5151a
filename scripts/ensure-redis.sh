#!/usr/bin/env bash
# Makes sure redis-server and redis-cli exist for the Redis tests (which start their own
# servers on free loopback ports), and openssl for the TLS test's throwaway certificates.
# Installs Debian's packages only when a binary is missing; set SESSIONKIT_REDIS_SERVER /
# SESSIONKIT_REDIS_CLI to use binaries from elsewhere.
set -euo pipefail

server="${SESSIONKIT_REDIS_SERVER:-redis-server}"
cli="${SESSIONKIT_REDIS_CLI:-redis-cli}"
packages=()
if ! command -v "$server" >/dev/null 2>&1 || ! command -v "$cli" >/dev/null 2>&1; then
  packages+=(redis-server redis-tools)
fi
if ! command -v openssl >/dev/null 2>&1; then
  packages+=(openssl)
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: missing ${packages[*]} and apt-get is not available." >&2
  echo "Install Redis 7 (server and cli) and openssl, or set SESSIONKIT_REDIS_SERVER/_CLI." >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "ensure-redis: installing ${packages[*]} with apt-get" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${packages[@]}"
# The package may start a system service on 6379; the tests never use it.
command -v "$server" >/dev/null 2>&1 && command -v "$cli" >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1
