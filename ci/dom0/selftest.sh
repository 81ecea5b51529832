#!/bin/sh
# Tests the harness itself on real Xen in QEMU: the minimal guest as dom0
# (path 1) and as a domU under the Linux dom0 (path 2), every way a job can
# end (also at its timeout), driver scripts, live streaming, and byte-exact
# output of more than 1 MiB, also when QEMU's stdout is read slowly.
#
#   ci/dom0/selftest.sh [WORKDIR]     (default: ./target/harness)
#
# Builds into WORKDIR/dom0 and WORKDIR/guest (cached by ci/dom0/build.sh),
# keeps each boot's output in WORKDIR/selftest/, and ends with the line
# "harness selftest: N passed, N failed"; the exit status is 1 on failure.
# Takes about two minutes here.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
ci=$(dirname "$here")
work=${1:-target/harness}
mkdir -p "$work"
work=$(cd "$work" && pwd)
logs=$work/selftest
rm -rf "$logs"
mkdir -p "$logs"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() {	# NAME COMMAND...
	name=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi
}

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	apt-cache policy qemu-system-x86 | grep -q 'Candidate: [0-9]' ||
		apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 \
		>/dev/null
fi
"$here/build.sh" "$work/dom0"
"$ci/minimal-guest/build.sh" "$work/guest"
guest=$work/guest/minimal-guest
tguest=$work/guest/test-guest
RS=$(printf '\036')

# Drops the one CR that Xen's serial driver puts before each LF.
drop_cr() { sed 's/\r$//' "$1"; }

# The body of job NNN in a boot's output.
job_body() {	# OUTPUT NNN
	drop_cr "$1" | awk -v job="$2" '
		$0 == "@@XENJOB BEGIN " job { on = 1; next }
		on && index($0, "@@XENJOB END " job " ") == 1 { exit }
		on { print }'
}

job_end() {	# OUTPUT NNN -> how the job ended
	drop_cr "$1" | sed -n "s/^@@XENJOB END $2 //p"
}

# Expected bodies.
printf '%sOhello from the minimal guest\\x0a\n%sX0\n' "$RS" "$RS" \
	>"$logs/hello-framed.expect"
printf 'hello from the minimal guest\n' >"$logs/hello-plain.expect"
flood_bytes=1100000
{
	printf '%sOhello from the minimal guest\\x0a\n' "$RS"
	"$work/guest/floodgen" "$flood_bytes"
	printf '%sX0\n' "$RS"
} >"$logs/flood.expect"

# --- Path 1: the guest as dom0, straight from Xen -------------------------
path1() {	# NAME CMDLINE
	status=0
	timeout 60 qemu-system-x86_64 -machine pc -cpu qemu64,+rdrand -m 512 \
		-nographic -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$work/dom0/xen" \
		-append "console=com1 com1=115200,8n1 dom0_mem=64M" \
		-initrd "$guest $2" </dev/null >"$logs/$1.out" 2>&1 || status=$?
	# isa-debug-exit with value 0 makes QEMU exit with (0 << 1) | 1.
	check "$1: QEMU ended through isa-debug-exit" [ "$status" -eq 1 ]
}
path1 dom0-framed "xen.console=framed"
check "dom0-framed: framed records" \
	sh -c "sed 's/\r\$//' '$logs/dom0-framed.out' | grep -a '$RS' |
		cmp - '$logs/hello-framed.expect'"
path1 dom0-plain ""
check "dom0-plain: plain line" \
	grep -qx 'hello from the minimal guest.' "$logs/dom0-plain.out"

# --- Path 2: jobs under the Linux dom0 ------------------------------------
"$here/jobs-cpio.sh" "$logs/jobs.cpio" \
	"$guest" "xen.console=framed" \
	"$guest" "" \
	"$tguest" "xen.console=framed mg.flood=$flood_bytes" \
	"$tguest" "mg.ticks=3" \
	"$tguest" "xen.console=framed mg.crash" \
	"$tguest" "mg.reboot" \
	"$logs/hello-plain.expect" ""
out=$logs/dom0-jobs.out
# Stamp each line with its arrival time (for the live-streaming check).
timeout 300 "$here/boot.sh" "$work/dom0" "$logs/jobs.cpio" </dev/null 2>&1 |
	tee "$out" | grep -a --line-buffered 'tick ' |
	while IFS= read -r line; do
		echo "$(date +%s.%N) $line"
	done >"$logs/ticks.times"

check "jobs: ALLDONE" grep -qa '^@@XENJOB ALLDONE' "$out"
check "job 001 framed: END poweroff" [ "$(job_end "$out" 001)" = poweroff ]
job_body "$out" 001 >"$logs/001.body"
check "job 001 framed: body exact" \
	cmp "$logs/001.body" "$logs/hello-framed.expect"
job_body "$out" 002 >"$logs/002.body"
check "job 002 plain: body exact" \
	cmp "$logs/002.body" "$logs/hello-plain.expect"
check "job 002 plain: END poweroff" [ "$(job_end "$out" 002)" = poweroff ]
job_body "$out" 003 >"$logs/003.body"
check "job 003 flood: $(wc -c <"$logs/flood.expect") bytes exact" \
	cmp "$logs/003.body" "$logs/flood.expect"
check "job 004 ticks: END poweroff" [ "$(job_end "$out" 004)" = poweroff ]
# The guest spins about 2^30 TSC ticks between ticks: the lines must not
# arrive together, as they would if output were held back until the end.
check "job 004 ticks: lines arrive as written" awk '
	{ t[NR] = $1 }
	END { exit !(NR == 3 && t[3] - t[1] > 0.3) }' "$logs/ticks.times"
check "job 005 crash: END crash" [ "$(job_end "$out" 005)" = crash ]
check "job 005 crash: Xen's reason forwarded" \
	grep -qa '^@@XENJOB XEN .*Unhandled: vec 6, #UD' "$out"
check "job 006 reboot: END reboot" [ "$(job_end "$out" 006)" = reboot ]
check "job 007 not a kernel: END error" [ "$(job_end "$out" 007)" = error ]

# --- Drivers, timeouts, and a name used twice -----------------------------
# Job 1's driver reads xenstore, types into the console and exits 3; job 2
# never stops by itself and has a driver that never ends either: dom0 must
# stop both at the 3 s timeout; job 3 has job 2's name, and must get its own
# console log all the same.
tree=$logs/driver-jobs
rm -rf "$tree"
driver_job() {	# NNN IMAGE CMDLINE NAME
	mkdir -p "$tree/jobs/$1"
	cp "$2" "$tree/jobs/$1/image"
	printf 'name = "%s"\ntype = "pv"\nkernel = "/jobs/%s/image"\ncmdline = "%s"\nmemory = 32\n' \
		"$4" "$1" "$3" >"$tree/jobs/$1/xl.cfg"
}
driver_job 001 "$tguest" "xen.console=framed mg.ticks=4" talker
cat >"$tree/jobs/001/driver" <<'EOF'
wait_output 'tick 0'
echo "name=$(xenstore-read /local/domain/$DOMID/name) job=$JOB"
console_input 'typed'
stty -F "$(console_tty)" -a 2>/dev/null | tr ' ' '\n' | grep -x -e -echo -e -opost | tr '\n' ' '
echo
exit 3
EOF
driver_job 002 "$tguest" "xen.console=framed mg.ticks=100000" again
echo 3 >"$tree/jobs/002/timeout"
echo 'sleep 1000' >"$tree/jobs/002/driver"
driver_job 003 "$guest" "xen.console=framed" again
(cd "$tree" && find jobs | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
	>"$logs/jobs-driver.cpio"
out=$logs/dom0-driver.out
timeout 300 "$here/boot.sh" "$work/dom0" "$logs/jobs-driver.cpio" </dev/null \
	>"$out" 2>&1 || true
check "driver job: xenstore, name, job number" \
	grep -qa '^@@XENJOB DRIVER name=talker job=001' "$out"
check "driver job: the console pty is raw" \
	grep -qa '^@@XENJOB DRIVER -opost -echo' "$out"
check "driver job: its status" grep -qa '^@@XENJOB DRIVEREXIT 3' "$out"
check "driver job: END poweroff" [ "$(job_end "$out" 001)" = poweroff ]
check "timeout job: END timeout" [ "$(job_end "$out" 002)" = timeout ]
check "timeout job: its driver stopped" grep -qa '^@@XENJOB DRIVEREXIT 143' "$out"
job_body "$out" 003 >"$logs/again.body"
check "a name used twice: the second guest's own log" \
	cmp "$logs/again.body" "$logs/hello-framed.expect"
check "driver jobs: ALLDONE" grep -qa '^@@XENJOB ALLDONE' "$out"

# --- A vif on the bridge, through the busybox hotplug script --------------
JOB_CFG_EXTRA='vif = [ "bridge=xenbr0" ]' "$here/jobs-cpio.sh" \
	"$logs/jobs-vif.cpio" "$guest" "xen.console=framed"
timeout 300 "$here/boot.sh" "$work/dom0" "$logs/jobs-vif.cpio" </dev/null \
	>"$logs/dom0-vif.out" 2>&1 || true
job_body "$logs/dom0-vif.out" 001 >"$logs/vif.body"
check "vif job: END poweroff" \
	[ "$(job_end "$logs/dom0-vif.out" 001)" = poweroff ]
check "vif job: body exact" cmp "$logs/vif.body" "$logs/hello-framed.expect"

# --- The flood again, with QEMU's stdout read slowly ----------------------
# Reads 4 KiB at a time with a 20 ms pause: well under the rate the guest
# writes, so Xen's serial transmit buffer has to hold the backlog.
slow_reader() {
	while :; do
		head -c 4096 >"$logs/chunk"
		[ -s "$logs/chunk" ] || break
		cat "$logs/chunk"
		sleep 0.02
	done
}
"$here/jobs-cpio.sh" "$logs/jobs-flood.cpio" \
	"$tguest" "xen.console=framed mg.flood=$flood_bytes"
timeout 300 "$here/boot.sh" "$work/dom0" "$logs/jobs-flood.cpio" </dev/null \
	2>&1 | slow_reader >"$logs/dom0-slow.out"
job_body "$logs/dom0-slow.out" 001 >"$logs/slow.body"
check "flood, slow reader: bytes exact" \
	cmp "$logs/slow.body" "$logs/flood.expect"

echo "harness selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
