#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, postgres, pg_isready) exist for the
# PostgreSQL tests and benchmarks, which start their own servers on free loopback ports and
# never use a system service. Installs Debian's `postgresql` package only when they are
# missing; set SESSIONKIT_PG_BIN to a directory holding them to use binaries from elsewhere.
set -euo pipefail
. "$(dirname "$0")/ensure-package.sh"

have_bins() {
  local dir
  if [ -n "${SESSIONKIT_PG_BIN:-}" ]; then
    [ -x "$SESSIONKIT_PG_BIN/initdb" ] && [ -x "$SESSIONKIT_PG_BIN/postgres" ] && [ -x "$SESSIONKIT_PG_BIN/pg_isready" ]
    return
  fi
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/pg_isready" ]; then
      return 0
    fi
  done
  return 1
}

if have_bins && id postgres >/dev/null 2>&1; then
  exit 0
fi

# The package may create and start a cluster on 5432; the tests never use it.
apt_install ensure-postgres \
  "Install PostgreSQL (initdb, postgres, pg_isready) or set SESSIONKIT_PG_BIN." \
  postgresql
have_bins
