#!/bin/sh
# Builds the minimal PV guest.
#
#   ci/minimal-guest/build.sh OUTDIR
#
# OUTDIR/minimal-guest  the guest (docs/harness.md says what it does)
# OUTDIR/test-guest     the same plus the test-only mg.* words of main.c
# OUTDIR/floodgen       host tool printing what mg.flood=BYTES writes
#
# Needs gcc and libc6-dev (for floodgen); installs them if missing.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

step() { printf 'minimal-guest: %s\n' "$*"; }

missing=
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
[ -e /usr/include/stdio.h ] || missing="$missing libc6-dev"
if [ -n "$missing" ]; then
	step "installing$missing"
	if ! apt-cache policy gcc 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		apt-get update -qq >/dev/null
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing \
		>/dev/null
fi

cflags="-O2 -Wall -Wextra -Werror -std=gnu11 -ffreestanding -fno-pic -fno-pie
	-fno-stack-protector -fno-asynchronous-unwind-tables -mno-red-zone
	-mgeneral-regs-only"
ldflags="-nostdlib -static -no-pie -Wl,-T,$here/guest.ld -Wl,--build-id=none
	-Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments"

build_guest() {	# NAME EXTRA_CFLAGS
	gcc $cflags $2 -c "$here/head.S" -o "$out/$1.head.o"
	gcc $cflags $2 -c "$here/main.c" -o "$out/$1.main.o"
	gcc $ldflags "$out/$1.head.o" "$out/$1.main.o" -o "$out/$1"
	rm -f "$out/$1.head.o" "$out/$1.main.o"
	step "built $out/$1 ($(wc -c <"$out/$1") bytes)"
}

build_guest minimal-guest ""
build_guest test-guest "-DMG_TEST_MODES"
gcc -O2 -Wall -Wextra -Werror "$here/floodgen.c" -o "$out/floodgen"
step "built $out/floodgen"
