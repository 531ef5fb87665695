#!/usr/bin/env bash
# Installs, as root, the Debian packages tests/novaharness needs (the list is
# novaharness.Packages): only the missing ones, `apt-get update` once before,
# and with a temporary /usr/sbin/policy-rc.d (exit 101) so that no package
# starts its service (the harness starts its own RabbitMQ, Glance and Nova on
# its own ports). nova-compute is not among them: Debian's needs a hypervisor;
# the harness runs python3-nova's compute on the fake driver instead.
set -euo pipefail
pkgs=(rabbitmq-server python3-kombu glance-api python3-glanceclient nova-api nova-conductor nova-scheduler
  python3-nova python3-psycopg2 python3-openstackclient python3-novaclient)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || { echo "novaharness: all packages installed"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "novaharness: installing ${missing[*]} needs root" >&2; exit 1; }
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# added by tests/novaharness/install.sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi
trap '[ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
echo "novaharness: installing ${missing[*]}"
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
