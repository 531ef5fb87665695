#!/usr/bin/env bash
# Create-to-Running latency: unisched (Zun API -> coordinator -> relay ->
# agent -> Docker -> report) against a plain `docker run -d` of the same
# image on the same private dockerd, 50 of each, interleaved
# (BenchmarkCreateToRunning in tests/containers). Writes the section
# "Containers: create to Running" of docs/benchmarks.md.
#
#   scripts/bench-containers.sh          # measure and write the section
#   scripts/bench-containers.sh -n       # measure and print only
#   UNISCHED_BENCH_SAMPLES=10 scripts/bench-containers.sh -n
#
# Needs root, Debian's docker.io and busybox-static (the test image is
# built from it) and the local PostgreSQL (UNISCHED_TEST_DATABASE_URL).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
doc="$top/docs/benchmarks.md"
if [ "${1:-}" = "-n" ]; then
  doc=""
  shift
fi
export UNISCHED_REQUIRE_DOCKER=1
export UNISCHED_BENCH_DOC="$doc"
exec go test ./tests/containers -run '^$' -bench '^BenchmarkCreateToRunning$' -benchtime 1x -count 1 -timeout 40m -v "$@"
