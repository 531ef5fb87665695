#!/usr/bin/env bash
# Boot-to-ACTIVE with unisched as Nova's Placement vs upstream Placement
# 8.0.0, same Nova, same load (tests/nova BenchmarkBootToActive: rounds of
# one environment of each side in turn, the first side alternating; 20
# boots, 5 at a time, after a warm-up; UNISCHED_NOVA_BENCH_ROUNDS, default
# 3), and the notify lag of every delivery of the unisched rounds, written
# into docs/benchmarks.md below the marker line ("## Nova: boot to
# ACTIVE"). Installs placement-api and the Nova packages when missing
# (root). One environment at a time on ports UNISCHED_NOVA_PORT_BASE..
# (default: free ports).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-upstream-placement.sh"
"$top/tests/novaharness/install.sh" >/dev/null
cd "$top"
export UNISCHED_NOVA_BENCH_DOC="$top/docs/benchmarks.md"
exec go test -count=1 -run '^$' -bench BootToActive -benchtime 1x -timeout 150m -v ./tests/nova "$@"
