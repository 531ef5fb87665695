#!/usr/bin/env bash
# Runs the upstream Placement gabbi suite against a freshly built unisched.
#
#   tests/conformance/run.sh [--suite DIR] [--port N] [runner args: --only F.yaml, --skip F.yaml, -v]
#
# Builds the binary, creates an empty database, starts `unisched serve` with the
# test-only reset endpoint, runs ../shared/conformance/placement/run_gabbits.py
# (or the suite named by --suite / UNISCHED_CONFORMANCE_DIR, e.g. an upstream
# checkout's placement/tests/functional/gabbits plus this runner), and stops the
# server by its pid. Exit status is the runner's. Results land in
# ${ARTIFACTS:-_artifacts}/conformance.{txt,json}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
suite=${UNISCHED_CONFORMANCE_DIR:-$top/../shared/conformance/placement}
if [ ! -d "$suite" ] && common=$(git -C "$top" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
  # a git worktree: ../shared sits beside the main checkout
  suite=$(dirname "$(dirname "$common")")/shared/conformance/placement
fi
port=${UNISCHED_CONFORMANCE_PORT:-18778}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -f "$suite/run_gabbits.py" ]; then
  echo "conformance: SKIPPED: no suite at $suite (give --suite DIR holding run_gabbits.py, http_fixtures.py and gabbits/)" >&2
  exit 0
fi
artifacts=${ARTIFACTS:-$top/_artifacts}
mkdir -p "$artifacts"
admin=${UNISCHED_TEST_DATABASE_URL:-postgres://postgres@/postgres?host=/var/run/postgresql}
db="unisched_conf_${port}"
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
dburl=$(/usr/bin/python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$admin" "$db")

bin="$artifacts/unisched-conformance"
(cd "$top" && go build -o "$bin" ./cmd/unisched)
# placement only: the container API's default port would clash between runs
UNISCHED_DATABASE_URL="$dburl" UNISCHED_TEST_RESET=1 UNISCHED_PLACEMENT_LISTEN="127.0.0.1:$port" \
  UNISCHED_CONTAINER_API_LISTEN=${UNISCHED_CONTAINER_API_LISTEN:-off} \
  UNISCHED_LOG_LEVEL=${UNISCHED_LOG_LEVEL:-warn} "$bin" serve >"$artifacts/conformance-server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$artifacts/conformance-server.log" >&2; exit 1; }
  sleep 0.1
done
set +e
PLACEMENT_URL="http://127.0.0.1:$port" PLACEMENT_RESET_URL="http://127.0.0.1:$port/_test/reset" \
  /usr/bin/python3 "$suite/run_gabbits.py" --url "http://127.0.0.1:$port" --dir "$suite/gabbits" \
  --json "$artifacts/conformance.json" "${args[@]}" 2>"$artifacts/conformance-detail.txt" | tee "$artifacts/conformance.txt"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
