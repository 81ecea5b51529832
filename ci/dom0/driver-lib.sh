# Helpers for a job's driver script (docs/harness.md, "Driver scripts").
#
# The dom0 /init runs /jobs/NNN/driver with `sh -e`, after sourcing this
# file, once the job's guest exists, with:
#
#   DOMID        the guest's domain id
#   NAME         the guest's domain name
#   JOB          the job's number (NNN)
#   CONSOLE_LOG  the file xenconsoled logs the guest's console to
#
# and XENJOB_STOP, a file that /init creates once the guest is gone.
# Every helper returns non-zero with a message on stderr when it fails, so
# that under `sh -e` a failed step ends the driver with that status.

# How long wait_output waits when it is given no time, in seconds.
XENJOB_WAIT_DEFAULT=30

# Prints centiseconds of uptime (a clock that never steps).
xenjob_now() {
	read -r xenjob_up xenjob_idle </proc/uptime
	echo $((${xenjob_up%.*}${xenjob_up#*.}))
}

# wait_output TEXT [SECS]: waits until the guest's console log holds TEXT.
#
# The log holds the guest's console as it wrote it: with xen.console=framed
# (what the runner uses) that is one record per line, in which printable
# ASCII but `\` stands for itself, so TEXT should be printable text that the
# program wrote in one go (one println!).  Fails after SECS (default 30), or
# at once when the guest is gone and the log does not hold TEXT.
wait_output() {
	xenjob_text=$1
	xenjob_secs=${2:-$XENJOB_WAIT_DEFAULT}
	case "$xenjob_secs" in
	'' | *[!0-9]*)
		echo "wait_output: give whole seconds, not '$xenjob_secs'" >&2
		return 2
		;;
	esac
	xenjob_until=$(($(xenjob_now) + xenjob_secs * 100))
	while :; do
		# Decided before looking, so that text written just before the
		# guest went away is still found.
		xenjob_gone=
		[ -e "$XENJOB_STOP" ] && xenjob_gone=1
		if [ -f "$CONSOLE_LOG" ] && grep -qF -- "$xenjob_text" "$CONSOLE_LOG"; then
			return 0
		fi
		if [ -n "$xenjob_gone" ]; then
			echo "wait_output: the guest is gone and never wrote '$xenjob_text'" >&2
			return 1
		fi
		if [ "$(xenjob_now)" -ge "$xenjob_until" ]; then
			echo "wait_output: '$xenjob_text' did not come within $xenjob_secs s" >&2
			return 1
		fi
		sleep 0.05
	done
}

# console_tty: prints the pty that xenconsoled made for the guest's console.
# xenconsoled writes the key soon after the domain exists; on a loaded machine that
# can be after the guest's first output, so it is waited for (up to 10 s).
console_tty() {
	xenjob_tries=0
	while [ "$xenjob_tries" -lt 100 ]; do
		xenstore-read "/local/domain/$DOMID/console/tty" 2>/dev/null && return 0
		xenjob_tries=$((xenjob_tries + 1))
		sleep 0.1
	done
	echo "console_tty: no /local/domain/$DOMID/console/tty in xenstore after 10 s" >&2
	return 1
}

# console_input TEXT: types TEXT into the guest's console, as `xl console`
# does: the bytes go to the pty xenconsoled made for the guest, which puts
# them in the guest's input ring.  The pty is put in raw mode first, so
# that nothing is echoed back as input or altered (no CR added to a LF).
# TEXT is written exactly; a newline in it goes as LF.
console_input() {
	xenjob_tty=$(console_tty) || return 1
	if ! stty -F "$xenjob_tty" raw -echo; then
		echo "console_input: cannot put $xenjob_tty in raw mode" >&2
		return 1
	fi
	if ! printf '%s' "$1" >"$xenjob_tty"; then
		echo "console_input: cannot write to $xenjob_tty" >&2
		return 1
	fi
}
