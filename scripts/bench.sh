#!/usr/bin/env bash
# Measures unisched side by side with upstream Placement 8.0.0 (issue 3) and
# writes docs/benchmarks.md. Flags go to tests/bench (go run ./tests/bench -h),
# e.g. scripts/bench.sh -sizes 1000 -unisched-sizes 10000 -reps 10.
# Ports: free ones, picked again when taken before a server binds it
# (-upstream-port, -unisched-port fix them);
# PostgreSQL: UNISCHED_TEST_DATABASE_URL (default: local, unix socket).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-upstream-placement.sh"
cd "$top"
exec go run ./tests/bench "$@"
