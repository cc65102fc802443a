#!/usr/bin/env bash
# System packages the factory and its tests use, installed only when missing.
# Debian as root: apt-get; elsewhere it says what is missing and stops.
set -euo pipefail

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v patch >/dev/null 2>&1 || need+=(patch)
command -v git >/dev/null 2>&1 || need+=(git)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # make bench: load against the index
# [server] database = "postgresql" (flows/postgres.py): Debian's server programs
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need+=(postgresql)
if [ "${FACTORY_BROWSER_TESTS:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing system packages: ${need[*]}; hint: install them with your package manager" >&2
    exit 1
  fi
  if [[ " ${need[*]} " == *" postgresql "* ]]; then
    # the factory makes its own private cluster: no system-wide one on port 5432
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/factory.conf
  fi
  echo "installing ${need[*]} from Debian ..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
"$(dirname "$0")/ensure-docker.sh"
