#!/usr/bin/env bash
# `make chaos`: TestChaos with CHAOS_JOBS jobs (default 500) under faults
# drawn from CHAOS_SEED (default 1). Prints the run's summary table, ending
# with "chaos: J jobs, F faults, V violations"; exits non-zero on any
# violation (or when the run could not be made).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export CHAOS_JOBS=${CHAOS_JOBS:-500} CHAOS_SEED=${CHAOS_SEED:-1}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -count=1 -timeout 90m -run '^TestChaos$' -v ./chaos/ >"$log" 2>&1
status=$?
# go test's own framing (RUN/PASS lines) would follow the summary: drop it,
# so that the summary's last line is the output's last line.
grep -vE '^(=== RUN|--- (PASS|FAIL)|PASS$|FAIL$|ok |FAIL\s)' "$log" | grep -v '^chaos: ' || true
line=$(grep '^chaos: ' "$log" | tail -1)
if [ -z "$line" ]; then
	echo "chaos: the run did not finish (exit $status)"
	exit 1
fi
echo "$line"
exit $status
