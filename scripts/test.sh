#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine (as root or a sudo user):
#
#   ./scripts/test.sh [tox-compat.sh arguments, default -e all]
#
# Prepares the machine, then runs ./tox-compat.sh -e all:
# - installs what is missing from Debian: postgresql-15, python3-gabbi,
#   python3-openstackclient, python3-osc-placement, docker.io, busybox-static,
#   python3-zunclient, and for tests/nova RabbitMQ, Glance and Nova's api,
#   conductor, scheduler and python3-nova (apt, via sudo unless root),
#   and upstream Placement 8.0.0 for tests/differential
#   (scripts/install-upstream-placement.sh: its services are not started);
# - without UNISCHED_TEST_DATABASE_URL: starts Debian's cluster 15/main if it is
#   down (pg_ctlcluster 15 main start) and, only if the postgres superuser is not
#   reachable over the unix socket, maps this OS user to it (peer map in pg_hba.conf);
# - then gofmt/vet/staticcheck, unit and functional Go tests, coverage, the CLI
#   test, the container tests (their own dockerd; UNISCHED_REQUIRE_DOCKER=1 makes a
#   missing Docker fail them), the Placement conformance suite and FUZZTIME (10s)
#   of every Fuzz target.
# Exits non-zero on any failure; the summary at the end has counts and timings.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"

log "preparing the machine"
ensure_go
apt_install postgresql-15 postgresql-client-15 python3-gabbi python3-openstackclient python3-osc-placement curl
# imagesec test images (imagesec/testimage): sfdisk, qemu-img, mkfs.xfs, rpmbuild;
# imagesec/upgrade: debugfs, dumpe2fs, mke2fs (e2fsprogs).
apt_install fdisk qemu-utils xfsprogs rpm e2fsprogs
# Containers: dockerd (started by the tests themselves, never as a service),
# the busybox image's source, and the Zun CLI plugin.
apt_install docker.io busybox-static python3-zunclient
# The operations step: Keystone (served by uwsgi), haproxy, headless chromium.
apt_install keystone python3-keystone chromium haproxy uwsgi-core uwsgi-plugin-python3
# Real Nova for tests/nova (tests/novaharness starts it on its own ports; its
# install.sh keeps package scripts from starting RabbitMQ, Glance or Nova).
"${SUDO[@]}" "$top/tests/novaharness/install.sh"
# Upstream Placement is what tests/differential compares with; without it that
# test skips (CI sets UNISCHED_REQUIRE_UPSTREAM=1 so that it cannot).
"${SUDO[@]}" "$top/scripts/install-upstream-placement.sh" \
  || log "warning: upstream Placement could not be installed: tests/differential will skip"
ensure_test_database
log "PostgreSQL reachable at $UNISCHED_TEST_DATABASE_URL"
[ $# -gt 0 ] || set -- -e all
export script_start
exec "$top/tox-compat.sh" "$@"
