#!/bin/bash
# Times the harness: boots the Linux dom0 RUNS times, each time with JOBS
# jobs of the same guest, and prints min/median/max (seconds) of:
#
#   dom0 start      QEMU start -> Xen starts dom0 ("about to get started")
#   toolstack up    QEMU start -> "@@XENJOB BEGIN 001"
#   first line      "@@XENJOB BEGIN" -> the guest's first line (xl create
#                   included), over all jobs
#   job             "@@XENJOB BEGIN" -> "@@XENJOB END", over all jobs
#   QEMU run        QEMU start -> QEMU exit
#
#   ci/dom0/measure.sh DOM0_OUTDIR RUNS IMAGE [CMDLINE [JOBS]]
#
# Lines are stamped when they reach this script through a pipe, so the
# figures include the serial path.  Environment as for boot.sh.
set -euo pipefail

if [ $# -lt 3 ]; then
	echo "usage: $0 DOM0_OUTDIR RUNS IMAGE [CMDLINE [JOBS]]" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
dom0=$1 runs=$2 image=$3 cmdline=${4:-} njobs=${5:-1}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/measure.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

args=()
for _ in $(seq "$njobs"); do args+=("$image" "$cmdline"); done
"$here/jobs-cpio.sh" "$tmp/jobs.cpio" "${args[@]}"

# Seconds since $1 (an EPOCHREALTIME value), three decimals.
since() {
	local now=$EPOCHREALTIME
	local s=$((${now%.*} - ${1%.*})) us=$((10#${now#*.} - 10#${1#*.}))
	if [ "$us" -lt 0 ]; then s=$((s - 1)) us=$((us + 1000000)); fi
	printf '%d.%03d' "$s" $((us / 1000))
}

for run in $(seq "$runs"); do
	start=$EPOCHREALTIME
	begin=
	first=
	while IFS= read -r line; do
		line=${line%$'\r'}
		case "$line" in
		*"about to get started"*)
			echo "dom0 $(since "$start")" ;;
		"@@XENJOB BEGIN 001")
			t=$(since "$start"); echo "toolstack $t"; begin=$t; first=1 ;;
		"@@XENJOB BEGIN "*)
			begin=$(since "$start"); first=1 ;;
		"@@XENJOB END "*)
			echo "job $(echo "$(since "$start") - $begin" | bc)" ;;
		"@@XENJOB"* | "(XEN)"* | "["*) ;;
		*)
			if [ -n "$first" ] && [ -n "$begin" ]; then
				echo "first $(echo "$(since "$start") - $begin" | bc)"
				first=
			fi ;;
		esac
	done < <("$here/boot.sh" "$dom0" "$tmp/jobs.cpio" </dev/null 2>&1)
	echo "qemu $(since "$start")"
done >"$tmp/figures"

stat() {	# KEY LABEL
	sort -n <(sed -n "s/^$1 //p" "$tmp/figures") | awk -v label="$2" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { printf "%-14s no data\n", label; exit }
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%-14s min %6.2f  median %6.2f  max %6.2f  (n=%d)\n",
				label, v[1], m, v[NR], NR
		}'
}
stat dom0 "dom0 start"
stat toolstack "toolstack up"
stat first "first line"
stat job "job"
stat qemu "QEMU run"
