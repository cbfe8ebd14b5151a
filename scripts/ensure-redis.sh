#!/usr/bin/env bash
# Makes sure redis-server and redis-cli exist for the Redis tests (which start their own
# servers on free loopback ports). Installs Debian's packages only when a binary is missing;
# set SESSIONKIT_REDIS_SERVER / SESSIONKIT_REDIS_CLI to use binaries from elsewhere.
set -euo pipefail

server="${SESSIONKIT_REDIS_SERVER:-redis-server}"
cli="${SESSIONKIT_REDIS_CLI:-redis-cli}"
if command -v "$server" >/dev/null 2>&1 && command -v "$cli" >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: $server or $cli is missing and apt-get is not available." >&2
  echo "Install Redis 7 (server and cli) and re-run, or set SESSIONKIT_REDIS_SERVER/_CLI." >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "ensure-redis: installing redis-server and redis-tools with apt-get" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends redis-server redis-tools
# The package may start a system service on 6379; the tests never use it.
command -v "$server" >/dev/null 2>&1 && command -v "$cli" >/dev/null 2>&1
