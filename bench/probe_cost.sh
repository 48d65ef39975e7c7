#!/bin/sh
# SPDX-License-Identifier: MIT
# Per-hit cost of a uprobe on a Go function, by probe site:
#   entry           the stack-check cmp (single-stepped out of line by the kernel)
#   after-prologue  the instruction after the stack check (push rbp from Go 1.21 on: emulated)
#   ret             the RET instruction
# bench/probe_cost.go times N calls of a //go:noinline function in a tight loop; the cost of
# one hit is (ns per call traced) - (ns per call untraced), medians of REPS runs each.
#
# Usage (root): bench/probe_cost.sh [N [REPS]]      defaults: N=1000000 REPS=3
#   GO=/path/to/go     toolchain for the benchmark (default: Go 1.27 from tools/go-toolchains.sh,
#                      else the go in PATH); GOTRACE=path of gotrace (default: ./gotrace)
set -eu
cd "$(dirname "$0")/.."
N=${1:-1000000}
REPS=${2:-3}
GOTRACE=${GOTRACE:-./gotrace}
PY=/usr/bin/python3

[ "$(id -u)" = 0 ] || { echo "probe_cost.sh: needs root (BPF): run it with sudo" >&2; exit 1; }
[ -x "$GOTRACE" ] || { echo "probe_cost.sh: $GOTRACE is missing: run make first" >&2; exit 1; }

if [ -z "${GO:-}" ]; then
	root=$(tools/go-toolchains.sh 27 2>/dev/null | awk '$1 == 27 { print $2 }') || root=
	if [ -n "$root" ] && [ -x "$root/bin/go" ]; then
		GO=$root/bin/go
		export GOROOT="$root"
	else
		GO=$(command -v go)
	fi
fi
tmp=$(mktemp -d /tmp/gotrace-probe-cost.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cache=${GOTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gotrace}
GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="$cache/gocache/bench" \
	"$GO" build -o "$tmp/probe_cost" bench/probe_cost.go
BIN=$tmp/probe_cost

# "wall-ns cpu-ns" per call of one run: untraced, or traced at site $1 (hits checked).
run() {
	if [ "$1" = none ]; then
		"$BIN" -n "$N" | sed -n 's/.* ns_per_call=\([0-9.]*\) cpu_ns_per_call=\([0-9.]*\).*/\1 \2/p'
		return
	fi
	"$GOTRACE" count --json -o "$tmp/report.json" --at "$1" main.target -- "$BIN" -n "$N" \
		>"$tmp/out.txt"
	$PY - "$tmp/report.json" "$tmp/out.txt" "$N" "$1" <<'EOF'
import json, re, sys
doc = json.load(open(sys.argv[1]))
n, site = int(sys.argv[3]), sys.argv[4]
hits = sum(s["hits"] for s in doc["sites"])
# +1: the warm-up call before the timed loop. Entry may count more (stack growth, preemption).
if hits < n + 1 or (site != "entry" and hits != n + 1):
    sys.exit("probe_cost: %s site counted %d hits for %d calls" % (site, hits, n + 1))
m = re.search(r" ns_per_call=([0-9.]+) cpu_ns_per_call=([0-9.]+)", open(sys.argv[2]).read())
print(m.group(1), m.group(2))
EOF
}

# Median of column $1 of the lines on stdin.
median() {
	cut -d' ' -f"$1" | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "probe_cost: $("$GO" version | cut -d' ' -f3), $N calls, median of $REPS runs per site, kernel $(uname -r)"
"$GOTRACE" count -v --at all main.target -- "$BIN" -n 1 2>&1 >/dev/null |
	sed -n 's/^gotrace: main.target: after-prologue/  after-prologue at/p'
for i in $(seq "$REPS"); do run none; done >"$tmp/none"
wall0=$(median 1 <"$tmp/none") cpu0=$(median 2 <"$tmp/none")
printf '%-15s %13s %13s %13s %13s\n' SITE WALL-NS/CALL CPU-NS/CALL WALL-NS/HIT CPU-NS/HIT
printf '%-15s %13s %13s %13s %13s\n' untraced "$wall0" "$cpu0" - -
for site in entry after-prologue ret; do
	for i in $(seq "$REPS"); do run "$site"; done >"$tmp/$site"
	wall=$(median 1 <"$tmp/$site") cpu=$(median 2 <"$tmp/$site")
	printf '%-15s %13s %13s %13.0f %13.0f\n' "$site" "$wall" "$cpu" \
		"$(echo "$wall $wall0" | awk '{ print $1 - $2 }')" \
		"$(echo "$cpu $cpu0" | awk '{ print $1 - $2 }')"
done
echo "NS/HIT = traced minus untraced, per call. CPU = the loop thread's user+system time."
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
