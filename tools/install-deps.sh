#!/bin/sh
# Install gotrace's build and test dependencies from Debian's packages.
# Idempotent: does nothing when every package is already installed.
# Usage: tools/install-deps.sh [build|demo|test]
set -eu
BUILD_PKGS="make gcc clang llvm pkg-config libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev
libcapstone-dev libjson-c-dev libncurses-dev libprotobuf-c-dev protobuf-c-compiler
libmicrohttpd-dev libsystemd-dev"
DEMO_PKGS="golang-go curl"
TEST_PKGS="libcmocka-dev libclang-rt-14-dev golang-go python3 python3-pytest gdb binutils
npm ca-certificates wrk bpftrace"

what=${1:-build}
pkgs=$BUILD_PKGS
[ "$what" = demo ] && pkgs="$BUILD_PKGS $DEMO_PKGS"
[ "$what" = test ] && pkgs="$BUILD_PKGS $DEMO_PKGS $TEST_PKGS"

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
# npm may come from NodeSource instead of Debian's package: accept any npm on PATH.
case " $missing " in *" npm "*) command -v npm >/dev/null 2>&1 && missing=$(echo "$missing" | sed 's/ npm//') ;; esac
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "gotrace: missing packages:$missing" >&2
	echo "gotrace: run 'sudo tools/install-deps.sh $what' (or install them with apt-get) and retry" >&2
	exit 1
fi
echo "gotrace: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
