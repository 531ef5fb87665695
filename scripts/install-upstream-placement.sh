#!/usr/bin/env bash
# Installs upstream Placement 8.0.0 from Debian's packages, the reference the
# bench (scripts/bench.sh) and the differential test (tests/differential)
# compare unisched with. Installs only what is missing; needs root for that.
# Package scripts must not start services of their own (they would take
# ports): a temporary policy-rc.d denies it unless one is already there.
set -euo pipefail
pkgs=(placement-api python3-placement uwsgi-core uwsgi-plugin-python3 python3-psycopg2)
missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-upstream-placement: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "install-upstream-placement: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
added=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# added by scripts/install-upstream-placement.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  added=1
fi
rc=0
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || rc=$?
if [ $rc = 0 ]; then
  apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null || rc=$?
fi
[ $added = 1 ] && rm -f "$policy"
exit $rc
