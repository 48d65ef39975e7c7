#!/bin/sh
# Regenerate vmlinux/<arch>/vmlinux.h from the running kernel's BTF.
# The committed header lets builds ignore the host's BTF (CO-RE relocates at load time).
set -eu
arch=${1:-$(uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')}
btf=${VMLINUX_BTF:-/sys/kernel/btf/vmlinux}
out=$(dirname "$0")/../vmlinux/$arch/vmlinux.h
mkdir -p "$(dirname "$out")"
${BPFTOOL:-bpftool} btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out from $btf ($(uname -r))"
