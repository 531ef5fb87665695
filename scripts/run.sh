#!/usr/bin/env bash
# Runs unisched in the foreground on a fresh Debian 12 machine:
#
#   ./scripts/run.sh [--data DIR] [--listen HOST:PORT] [--pg-port N]
#
# - installs PostgreSQL 15 from Debian if it is missing (apt, via sudo unless root);
# - without UNISCHED_DATABASE_URL, creates and starts a private PostgreSQL
#   cluster under DIR/pg (DIR defaults to ./.data), owned by an unprivileged
#   user (you, or `postgres` when run as root), listening on a unix socket in
#   DIR/pg/run and on 127.0.0.1:N (default 55432), trust auth for local users;
# - builds bin/unisched, runs `unisched migrate`, then `unisched serve`.
# Ctrl-C stops the service and the PostgreSQL this script started (by pid).
# Other configuration: UNISCHED_* variables or UNISCHED_CONFIG=etc/unisched.yaml.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"

data=${UNISCHED_DATA_DIR:-$PWD/.data}
listen=${UNISCHED_PLACEMENT_LISTEN:-127.0.0.1:8778}
pg_port=${UNISCHED_PG_PORT:-55432}
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --pg-port) pg_port=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

ensure_go
apt_install postgresql-15 postgresql-client-15 curl

pg_started=0
pg_data=""
serve_pid=""
as_pg=()

stop_all() {
  # Keep going when the terminal or a pipe reading our output is gone.
  trap - EXIT INT TERM
  trap '' PIPE
  set +e
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    log "stopping unisched (pid $serve_pid)"
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  if [ "$pg_started" = 1 ]; then
    local pid
    pid=$(head -1 "$pg_data/postmaster.pid" 2>/dev/null || true)
    log "stopping PostgreSQL (pid ${pid:-?}, data $pg_data)"
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 \
      || { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; } || true
  fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start_private_cluster sets UNISCHED_DATABASE_URL to a database in a cluster
# of our own under $data/pg, so nothing of the machine's PostgreSQL is touched.
start_private_cluster() {
  mkdir -p "$data"
  data=$(cd "$data" && pwd)
  pg_data=$data/pg
  local owner sock
  owner=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    # initdb and postgres refuse to run as root.
    owner=postgres
    # From / so that postgres does not trip over an unreadable working directory.
    as_pg=(env -C / runuser -u postgres --)
    if ! runuser -u postgres -- test -x "$data" 2>/dev/null; then
      # e.g. a checkout under /root: postgres cannot reach it, so the cluster
      # lives under /var/lib/unisched instead, one per data folder.
      local alt
      alt=/var/lib/unisched/pg-$(printf '%s' "$data" | sha1sum | cut -c1-12)
      log "user postgres cannot reach $data; the cluster lives in $alt (noted in $data/pg-location)"
      mkdir -p "$alt"
      chown postgres: /var/lib/unisched "$alt" 2>/dev/null || true
      chmod 755 /var/lib/unisched
      echo "$alt" >"$data/pg-location"
      pg_data=$alt/pg
    fi
  fi
  sock=$pg_data/run
  if [ ${#sock} -gt 90 ]; then
    die "socket folder $sock is too long for a unix socket; choose a shorter --data"
  fi
  if [ ! -f "$pg_data/PG_VERSION" ]; then
    log "creating PostgreSQL cluster in $pg_data (owner $owner)"
    mkdir -p "$pg_data"
    [ "$(id -u)" = 0 ] && chown "$owner": "$pg_data"
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$data/initdb.log" 2>&1 \
      || die "initdb failed: see $data/initdb.log"
    "${as_pg[@]}" mkdir -p "$sock"
  fi
  if "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    log "PostgreSQL in $pg_data is already running: using it (it stays up afterwards)"
  else
    log "starting PostgreSQL (data $pg_data, socket $sock, 127.0.0.1:$pg_port)"
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$pg_data" -w -t 60 -l "$pg_data/postgresql.log" \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$sock" start >/dev/null \
      || die "PostgreSQL did not start (port $pg_port busy? try --pg-port): see $pg_data/postgresql.log"
    pg_started=1
  fi
  local admin="postgres://postgres@/postgres?host=$sock&port=$pg_port"
  if [ "$(psql "$admin" -XAtqc "select count(*) from pg_database where datname='unisched'")" = 0 ]; then
    psql "$admin" -XAtqc 'CREATE DATABASE unisched' >/dev/null
  fi
  export UNISCHED_DATABASE_URL="postgres://postgres@/unisched?host=$sock&port=$pg_port"
}

if [ -n "${UNISCHED_DATABASE_URL:-}" ]; then
  log "using UNISCHED_DATABASE_URL (no private PostgreSQL)"
else
  start_private_cluster
fi

log "building bin/unisched"
(cd "$top" && go build -ldflags "-X main.Version=$(git -C "$top" describe --always --dirty 2>/dev/null || echo dev)" -o bin/unisched ./cmd/unisched)
log "migrating the database"
"$top/bin/unisched" migrate

export UNISCHED_PLACEMENT_LISTEN=$listen
"$top/bin/unisched" serve &
serve_pid=$!
url="http://$listen"
for _ in $(seq 1 100); do
  curl -sf "$url/" >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { serve_pid=""; die "unisched serve exited"; }
  sleep 0.1
done

cat >&2 <<MSG

  unisched (Placement API) is listening on $url   (pid $serve_pid)
  database: $UNISCHED_DATABASE_URL

  Try it (needs python3-openstackclient and python3-osc-placement from apt):
    openstack --os-auth-type admin_token --os-endpoint $url --os-token admin resource provider list
    curl -s $url/ ; echo

  Ctrl-C stops unisched$( [ "$pg_started" = 1 ] && echo " and this PostgreSQL" ).

MSG
if ! command -v openstack >/dev/null 2>&1; then
  log "note: the openstack CLI is not installed: apt-get install python3-openstackclient python3-osc-placement"
fi
set +e
wait "$serve_pid"
rc=$?
serve_pid=""
exit "$rc"
