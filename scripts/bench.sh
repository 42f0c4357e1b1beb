#!/usr/bin/env bash
# `make bench`: the benchmarks of issue 10, each figure next to a baseline
# measured in the same run (internal/benchreport lists the runs and the
# targets). Prints every go test's output as it comes, then the machine,
# a table of the figures and, last, one line per target:
#   target NAME: MEASURED (goal GOAL) PASS|MISS
# and writes the same to BENCHMARKS.md. Each go test's output is kept in
# .cronium/bench/. BENCH_BUDGET (10m) bounds the whole run: runs it leaves
# no time for are reported not measured. BENCH_ONLY=REGEX runs only the
# runs whose benchmark functions match.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
exec go run ./scripts/benchreport -out BENCHMARKS.md -logs .cronium/bench \
	-budget "${BENCH_BUDGET:-10m}" -only "${BENCH_ONLY:-}"
