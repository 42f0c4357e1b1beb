#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a *_fuzz_test.go file) for
# FUZZTIME each (default 60s), one after another: go test fuzzes a single
# target per invocation. FUZZPARALLEL sets -parallel (default: go's, one
# worker per CPU). FUZZMINIMIZETIME (default 10s) bounds the minimizing of
# each new input, which by default may take 60s and so a whole short run.
# New crashers land in the package's testdata/fuzz/ and then run with every
# go test as regression seeds.
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-60s}
minimize=${FUZZMINIMIZETIME:-10s}
parallel=()
[[ -n ${FUZZPARALLEL:-} ]] && parallel=(-parallel "$FUZZPARALLEL")

failed=()
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file"); do
		echo "== $pkg $target ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg"; then
			failed+=("$pkg $target")
		fi
	done
done < <(find . -path './.*' -prune -o -name '*_fuzz_test.go' -print | sed 's|^\./||' | sort)

if ((${#failed[@]})); then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
