#!/bin/sh
# Makes a jobs archive for ci/dom0/boot.sh: one job per IMAGE CMDLINE pair,
# numbered 001, 002, ... in the order given.
#
#   ci/dom0/jobs-cpio.sh OUT.cpio IMAGE CMDLINE [IMAGE CMDLINE]...
#
# Each job gets jobs/NNN/image (a copy of IMAGE) and jobs/NNN/xl.cfg, a
# PV config naming the domain job-NNN with JOB_MEMORY MiB (default 32)
# and JOB_VCPUS vCPUs (default 1); the lines in JOB_CFG_EXTRA (for example
# 'vif = [ "bridge=xenbr0" ]') are appended to every config.  The runner
# writes its own configs; this is for tests and for running by hand.
set -eu

if [ $# -lt 3 ] || [ $(( ($# - 1) % 2 )) -ne 0 ]; then
	echo "usage: $0 OUT.cpio IMAGE CMDLINE [IMAGE CMDLINE]..." >&2
	exit 2
fi
command -v cpio >/dev/null 2>&1 ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cpio >/dev/null

out=$1
shift
tree=$(mktemp -d "${TMPDIR:-/tmp}/xenjobs.XXXXXX")
trap 'rm -rf "$tree"' EXIT

n=0
while [ $# -gt 0 ]; do
	n=$((n + 1))
	job=$(printf '%03d' "$n")
	mkdir -p "$tree/jobs/$job"
	cp "$1" "$tree/jobs/$job/image"
	# xl's config syntax: a string in double quotes, with \" and \\.
	cmdline=$(printf '%s' "$2" | sed 's/\\/\\\\/g; s/"/\\"/g')
	cat >"$tree/jobs/$job/xl.cfg" <<EOF
name = "job-$job"
type = "pv"
kernel = "/jobs/$job/image"
cmdline = "$cmdline"
memory = ${JOB_MEMORY:-32}
vcpus = ${JOB_VCPUS:-1}
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "preserve"
${JOB_CFG_EXTRA:-}
EOF
	shift 2
done

(cd "$tree" && find jobs | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --quiet) >"$out"
