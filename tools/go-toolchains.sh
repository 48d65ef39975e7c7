#!/bin/sh
# Fetch Debian's Go toolchains for the test matrix into a cache outside the repo,
# without touching the system's apt sources or state:
#   apt-get download under a private apt state, then dpkg -x.
# Usage: tools/go-toolchains.sh [MINOR...]   (default: 19 21 22 23 24 25 26 27)
# Prints "MINOR GOROOT" per toolchain. Reuses what is cached.
# Go 1.19 is Debian bookworm's own golang-go (golang-1.19-go), also fetched here so the
# matrix does not depend on what the system has installed.
set -eu
CACHE=${GOTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gotrace}
MINORS=${*:-19 21 22 23 24 25 26 27}
APT=$CACHE/apt
mkdir -p "$CACHE/go" "$APT/lists/partial" "$APT/archives/partial" "$APT/etc"

aptopts() {
	echo "-o Dir::Etc::SourceList=$APT/etc/sources.list -o Dir::Etc::SourceParts=/dev/null" \
	     "-o Dir::State::Lists=$APT/lists -o Dir::Cache=$APT -o Dir::Cache::archives=$APT/archives" \
	     "-o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq"
}

need=""
for m in $MINORS; do
	[ -x "$CACHE/go/1.$m/usr/lib/go-1.$m/bin/go" ] || need="$need $m"
done

if [ -n "$need" ]; then
	cat > "$APT/etc/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-backports main
deb http://deb.debian.org/debian trixie main
deb http://deb.debian.org/debian trixie-backports main
SRC
	# Refresh the private lists at most once a day.
	if [ -z "$(find "$APT/lists" -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
		# shellcheck disable=SC2046
		apt-get $(aptopts) update >&2
	fi
	for m in $need; do
		dir=$CACHE/go/1.$m
		tmp=$(mktemp -d "$CACHE/go/.dl.XXXXXX")
		echo "go-toolchains: fetching golang-1.$m" >&2
		# shellcheck disable=SC2046
		(cd "$tmp" && apt-get $(aptopts) download "golang-1.$m-go" "golang-1.$m-src" >&2)
		mkdir -p "$tmp/root"
		for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
		rm -rf "$dir" && mv "$tmp/root" "$dir" && rm -rf "$tmp"
		"$dir/usr/lib/go-1.$m/bin/go" version >&2
	done
fi
for m in $MINORS; do
	echo "$m $CACHE/go/1.$m/usr/lib/go-1.$m"
done
