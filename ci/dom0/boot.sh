#!/bin/sh
# Boots Xen with the harness's Linux dom0 in QEMU and runs the jobs in a
# jobs archive; QEMU's stdout (Xen's serial console, which carries dom0's
# console) is passed through unchanged.  Ends when dom0 powers off after
# the last job (or when QEMU is killed: a guest may run forever).
#
#   ci/dom0/boot.sh OUTDIR JOBS_CPIO
#
# OUTDIR is what ci/dom0/build.sh made; JOBS_CPIO is a newc cpio archive
# holding jobs/NNN/xl.cfg and jobs/NNN/image (ci/dom0/jobs-cpio.sh makes
# one).  The kernel reads the two archives one after the other, so the
# jobs land in dom0's root file system.  The exit status is QEMU's.
#
# Environment (optional): XEN_EXTRA_ARGS is appended to Xen's command line,
# DOM0_EXTRA_ARGS to dom0's, QEMU_EXTRA_ARGS to QEMU's; QEMU_MEM (MiB,
# default 2048) and QEMU_SMP (default 1) size the emulated machine.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 OUTDIR JOBS_CPIO" >&2
	exit 2
fi
out=$(cd "$1" && pwd)
jobs=$2
for f in "$out/xen" "$out/vmlinux" "$out/initrd.cpio" "$jobs"; do
	[ -f "$f" ] || { echo "boot.sh: missing $f" >&2; exit 2; }
done

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	echo "boot.sh: installing qemu-system-x86" >&2
	if ! apt-cache policy qemu-system-x86 2>/dev/null |
		grep -q 'Candidate: [0-9]'; then
		apt-get update >/dev/null 2>&1
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y \
		qemu-system-x86 >/dev/null 2>&1; then
		echo "boot.sh: cannot install qemu-system-x86" >&2
		exit 1
	fi
fi

# QEMU's multiboot loader takes each module as one file: join the archives
# into a file that is deleted at once and reached as /dev/fd/3, so that it
# goes away with QEMU however QEMU ends.
initrd=$(mktemp "${TMPDIR:-/tmp}/xenjob-initrd.XXXXXX")
cat "$out/initrd.cpio" "$jobs" >"$initrd"
exec 3<"$initrd"
rm -f "$initrd"

smp=${QEMU_SMP:-1}
# sync_console: Xen's serial driver otherwise drops output when its
# transmit buffer is full (docs/harness.md, "Serial loss").
xen_args="console=com1 com1=115200,8n1 ${XEN_SERIAL_ARGS-serial_tx_buffer=32M}"
xen_args="$xen_args dom0_mem=512M,max:512M"
xen_args="$xen_args dom0_max_vcpus=$smp ${XEN_EXTRA_ARGS:-}"
# rootfstype=ramfs: no size limit on the unpacked initramfs (the runner's
# LINUX_CMDLINE says why).
dom0_args="console=hvc0 quiet rootfstype=ramfs ${DOM0_EXTRA_ARGS:-}"

exec qemu-system-x86_64 -machine pc -cpu qemu64,+rdrand -smp "$smp" \
	-m "${QEMU_MEM:-2048}" -nographic -no-reboot \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-kernel "$out/xen" -append "$xen_args" \
	-initrd "$out/vmlinux $dom0_args,/dev/fd/3" \
	${QEMU_EXTRA_ARGS:-}
