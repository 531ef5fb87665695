# Shared by scripts/run.sh, scripts/test.sh, tox-compat.sh and .ci/run: logging
# with timings, package installation and PostgreSQL helpers. Sourced, not run.
# shellcheck shell=bash

top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DEFAULT_TEST_DATABASE_URL='postgres://postgres@/postgres?host=/var/run/postgresql'
script_start=${script_start:-$(date +%s)}

# Root runs apt directly; a sudo user goes through sudo.
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi

log() { printf '[%s +%4ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - script_start))" "$*" >&2 || true; }
# usage prints the calling script's opening comment block.
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
die() { log "ERROR: $*"; exit 1; }

# Go may be installed but not on a sudo user's PATH.
ensure_go() {
  command -v go >/dev/null 2>&1 && return 0
  [ -x /usr/local/go/bin/go ] && { PATH=/usr/local/go/bin:$PATH; export PATH; return 0; }
  die "go not found: install Go (see go.mod for the version) and put it on PATH"
}

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

apt_updated=${apt_updated:-0}
# apt_install installs the Debian packages among "$@" that are missing; apt-get
# update runs at most once per script.
apt_install() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get: install them by hand"
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  # No package may start its service (keystone, haproxy, rabbitmq-server...):
  # the tests start their own on free ports. A policy-rc.d that says 101
  # (action forbidden) for the install's duration, unless one is there.
  local policy_added=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    "${SUDO[@]}" sh -c 'printf "#!/bin/sh\n# added by unisched scripts/lib.sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d' \
      && policy_added=1
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$policy_added" = 0 ] || "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install ${missing[*]} failed"
}

pg_ok() { psql "$1" -XAtqc 'select 1' >/dev/null 2>&1; }

# ensure_debian_cluster makes the default test URL usable: Debian's cluster
# 15/$PG_CLUSTER (main) exists and runs, and the invoking OS user may connect
# as the postgres superuser over the unix socket. When it has to change
# pg_hba.conf it adds a peer mapping for this OS user only (not trust for all).
PG_CLUSTER=${PG_CLUSTER:-main}
ensure_debian_cluster() {
  local url=$DEFAULT_TEST_DATABASE_URL c=$PG_CLUSTER i
  pg_ok "$url" && return 0
  if ! pg_lsclusters -h 2>/dev/null | awk -v c="$c" '$1=="15" && $2==c' | grep -q .; then
    log "creating PostgreSQL cluster 15/$c"
    "${SUDO[@]}" pg_createcluster 15 "$c" >/dev/null || die "pg_createcluster 15 $c failed"
  fi
  if ! pg_lsclusters -h | awk -v c="$c" '$1=="15" && $2==c {print $4}' | grep -q online; then
    log "starting PostgreSQL cluster 15/$c (pg_ctlcluster 15 $c start)"
    "${SUDO[@]}" pg_ctlcluster 15 "$c" start || die "pg_ctlcluster 15 $c start failed"
  fi
  for i in $(seq 1 50); do
    pg_ok "$url" && return 0
    psql "$url" -XAtqc 'select 1' 2>&1 | grep -qi 'authentication' && break
    sleep 0.2
  done
  local conf=/etc/postgresql/15/$c me tmp
  me=$(id -un)
  if ! "${SUDO[@]}" grep -q '^# unisched-test' "$conf/pg_hba.conf"; then
    log "allowing OS user $me to connect as postgres over the unix socket (peer map unisched in $conf/pg_hba.conf)"
    tmp=$(mktemp)
    { printf '# unisched-test: tests connect as the postgres superuser over the unix socket\nlocal all postgres peer map=unisched\n'
      "${SUDO[@]}" cat "$conf/pg_hba.conf"; } >"$tmp"
    "${SUDO[@]}" cp "$tmp" "$conf/pg_hba.conf"
    rm -f "$tmp"
  fi
  for u in postgres "$me"; do
    "${SUDO[@]}" grep -qE "^unisched[[:space:]]+$u[[:space:]]+postgres" "$conf/pg_ident.conf" \
      || echo "unisched $u postgres" | "${SUDO[@]}" tee -a "$conf/pg_ident.conf" >/dev/null
  done
  "${SUDO[@]}" pg_ctlcluster 15 "$c" reload
  for i in $(seq 1 25); do pg_ok "$url" && return 0; sleep 0.2; done
  die "cannot connect to $url: $(psql "$url" -XAtqc 'select 1' 2>&1 | head -3)"
}

# ensure_test_database: UNISCHED_TEST_DATABASE_URL if given (must be
# reachable), else Debian's cluster made usable by ensure_debian_cluster.
ensure_test_database() {
  if [ -n "${UNISCHED_TEST_DATABASE_URL:-}" ]; then
    pg_ok "$UNISCHED_TEST_DATABASE_URL" || die "cannot connect to UNISCHED_TEST_DATABASE_URL=$UNISCHED_TEST_DATABASE_URL: $(psql "$UNISCHED_TEST_DATABASE_URL" -XAtqc 'select 1' 2>&1 | head -3)"
  else
    ensure_debian_cluster
    export UNISCHED_TEST_DATABASE_URL=$DEFAULT_TEST_DATABASE_URL
  fi
}
