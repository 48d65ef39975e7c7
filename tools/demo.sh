#!/bin/sh
# make demo: build the bundled demo service the way production binaries are built
# (stripped, PIE), start it on 127.0.0.1, give it some traffic, and point gotrace at it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/.output/demo
mkdir -p "$out"
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || { echo "demo: no Go toolchain: run 'tools/install-deps.sh test'" >&2; exit 1; }

echo "== building demo/ (stripped, PIE) with $($GO version)"
(cd "$top/demo" && GOFLAGS=-mod=mod GOTOOLCHAIN=local GOPROXY=off \
	"$GO" build -buildmode=pie -ldflags='-s -w' -o "$out/demo-service" .)

rm -f "$out/port"
"$out/demo-service" -port-file "$out/port" 2>"$out/demo.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT INT TERM
i=0
while [ ! -s "$out/port" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "demo: the service did not start; see $out/demo.log" >&2; exit 1; }
	sleep 0.1
done
port=$(cat "$out/port")
echo "== demo service pid $pid on 127.0.0.1:$port; sending a little traffic"
for p in leak leak leak cache cache churn lock; do
	curl -s "http://127.0.0.1:$port/$p" >/dev/null 2>&1 || true
done
curl -s "http://127.0.0.1:$port/stats" 2>/dev/null || true

echo
echo "== $top/gotrace inspect -p $pid"
"$top/gotrace" inspect -p "$pid"
echo
addr=$(grep -m1 'r-xp' "/proc/$pid/maps" | cut -d- -f1)
echo "== $top/gotrace symbolize -p $pid (a few addresses in its text)"
"$top/gotrace" symbolize -p "$pid" "0x$(printf '%x' $((0x$addr + 0x1000)))" \
	"0x$(printf '%x' $((0x$addr + 0x20000)))"
echo
echo "== $top/gotrace goroutines -p $pid (read from its memory: not stopped, not signalled)"
"$top/gotrace" goroutines -p "$pid" | head -40
echo
echo "== $top/gotrace top -p $pid -b -d 24 -i 8, while a client hits /leak 4 times a second"
(
	end=$(($(date +%s) + 26))
	while [ "$(date +%s)" -lt $end ] && kill -0 $pid 2>/dev/null; do
		curl -s "http://127.0.0.1:$port/leak" >/dev/null 2>&1 || true
		sleep 0.25
	done
) &
load=$!
"$top/gotrace" top -p "$pid" -b -d 24 -i 8 -n 5
kill $load 2>/dev/null || true
echo
echo "== live, full screen: sudo $top/gotrace -p PID   (q quits)"
