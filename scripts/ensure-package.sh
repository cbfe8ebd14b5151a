# Sourced by the scripts/ensure-*.sh scripts: the one way they install what the tests need.
# They check first whether a binary is missing; only then do they call apt_install.
#
#   have COMMAND...                    true when every COMMAND is on PATH
#   apt_install WHO HINT [--with-recommends] PACKAGE...
#                                      installs Debian's PACKAGEs with apt-get (through sudo when
#                                      not root); where apt-get cannot run, says what is missing
#                                      (WHO: the script, HINT: what to do instead) and fails

have() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || return 1
  done
}

apt_install() {
  local who=$1 hint=$2
  shift 2
  local options=(--no-install-recommends)
  if [ "${1:-}" = --with-recommends ]; then
    options=()
    shift
  fi
  if ! have apt-get; then
    echo "$who: missing $* and apt-get is not available." >&2
    echo "$hint" >&2
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! have sudo; then
      echo "$who: missing $*: run 'apt-get install -y $*' as root." >&2
      echo "$hint" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "$who: installing $* with apt-get" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "$@"
}
