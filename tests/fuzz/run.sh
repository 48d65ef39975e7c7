#!/bin/sh
# Run the gosym fuzzer for a bounded time on a seed corpus of real Go binaries.
# Seeds: the regression inputs kept in tests/fuzz/regressions/ (crashes once found,
# now fixed) plus small Go binaries built by the toolchain cache, copied to a work dir.
# Usage: tests/fuzz/run.sh FUZZER SECONDS
set -eu
fuzzer=$1
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
cache=${GOTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gotrace}
work=$cache/fuzz
mkdir -p "$work/corpus" "$work/seeds"

# Regression inputs must all pass first, each on its own.
if [ -d "$here/regressions" ] && [ -n "$(ls -A "$here/regressions" 2>/dev/null)" ]; then
	"$fuzzer" -runs=0 "$here"/regressions/* >/dev/null 2>"$work/regress.log" || {
		cat "$work/regress.log" >&2; echo "fuzz: a regression input fails again" >&2; exit 1; }
	echo "fuzz: $(ls "$here/regressions" | wc -l) regression inputs pass"
fi

# Seeds: a tiny Go program built with each cached toolchain, plain and stripped+PIE.
if [ -z "$(ls -A "$work/seeds" 2>/dev/null)" ]; then
	src=$(mktemp -d)
	rm -rf "$work/seeds.tmp" && mkdir -p "$work/seeds.tmp"
	printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("seed") }\n' > "$src/main.go"
	printf 'module seed\n\ngo 1.17\n' > "$src/go.mod"
	"$here/../../tools/go-toolchains.sh" 19 27 | while read -r minor goroot; do
		for v in plain strip; do
			if [ $v = strip ]; then set -- -buildmode=pie "-ldflags=-s -w"; else set --; fi
			(cd "$src" && GOROOT=$goroot GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
				GOCACHE=$cache/gocache/1.$minor CGO_ENABLED=0 \
				"$goroot/bin/go" build "$@" -o "$work/seeds.tmp/go1.$minor-$v" .) >&2
		done
	done
	rm -rf "$src"
	rm -rf "$work/seeds" && mv "$work/seeds.tmp" "$work/seeds"
fi

echo "fuzz: running $fuzzer for ${secs}s"
# -max_len covers whole small binaries; crashes land in $work/crash-* and fail the run.
"$fuzzer" -max_total_time="$secs" -max_len=4194304 -timeout=10 -rss_limit_mb=4096 \
	-artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" "$work/seeds" \
	>"$work/fuzz.log" 2>&1 || { tail -40 "$work/fuzz.log" >&2; echo "fuzz: crash, input saved in $work/" >&2; exit 1; }
grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/fuzz.log" | tail -2
