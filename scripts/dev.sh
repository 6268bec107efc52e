#!/usr/bin/env bash
# photovfs developer entry point: set up (system packages, .venv) and run one task.
#   scripts/dev.sh serve LIBRARY [serve options]   set up, then serve LIBRARY over WebDAV
#   scripts/dev.sh test [pytest args]               set up, then lint and run the whole test suite
#   scripts/dev.sh setup                            set up only
# Set-up is idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv python3-dev gcc pkg-config fuse3 libfuse3-dev samba smbclient litmus
              rclone cadaver ffmpeg rsync curl postgresql openssl)

need_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "photovfs: installing system packages: ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

setup() {
  need_apt
  local py=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  local stamp=.venv/.photovfs-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test,fuse,faces]"
    touch "$stamp"
  fi
}

task=${1:-setup}
shift || true
case "$task" in
  setup) setup ;;
  serve) setup; exec .venv/bin/photovfs serve "$@" ;;
  test)
    setup
    .venv/bin/ruff check vfs dav fuse tests bench
    .venv/bin/mypy vfs
    exec .venv/bin/python -m pytest -q -rs "$@"
    ;;
  *) echo "usage: scripts/dev.sh setup|serve LIBRARY|test" >&2; exit 2 ;;
esac
