//! Xen services as a domU (docs/xen-services.md): console input, xenstore, event channels and
//! the domain's lifecycle, each driven from dom0 by the job's driver script.

use super::DOMU;
use xen_harness::{Mode, run};

/// Types three lines into the guest's console once it listens.
pub const TYPE_LINES: &str = "wait_output 'ready'
console_input 'hello world
'
console_input 'second line, with unicode: grüße
quit
'
";

#[test]
fn input_typed_into_the_console_reaches_stdin() {
    let r = DOMU.result("console_input");
    assert_eq!(r.driver_status, Some(0), "driver: {}", r.driver_output);
    assert_eq!(
        r.stdout,
        "ready\ngot: \"hello world\"\ngot: \"second line, with unicode: grüße\"\ngot: \"quit\"\n3 lines\n",
        "stderr: {}",
        r.stderr
    );
    assert_eq!(r.status, 0);
}

/// dom0's side of `xenstore basics`: a key for the guest, reading the guest's, a ping.
pub const XENSTORE_PEER: &str = "wait_output 'ready'
echo \"domid $DOMID\"
xenstore-write /local/domain/$DOMID/data/from-dom0 'written by dom0'
wait_output 'wrote data/from-guest'
echo \"dom0 reads: $(xenstore-read /local/domain/$DOMID/data/from-guest)\"
wait_output 'waiting for ping'
xenstore-write /local/domain/$DOMID/data/ping pong
";

#[test]
fn a_program_reads_and_writes_xenstore_with_dom0() {
    let r = DOMU.result("xenstore_basics");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_eq!(r.driver_status, Some(0), "driver: {}", r.driver_output);
    let domid = r.driver_output.lines().find_map(|l| l.strip_prefix("domid ")).expect("the driver's domid");
    let expected = format!(
        "domid {domid}\nname {}\nready\nfrom dom0: written by dom0\nwrote data/from-guest\n\
         data has [\"from-dom0\", \"from-guest\"]\nfirst event Some(\"data/ping\")\nwaiting for ping\n\
         watch fired: data/ping = pong\ncounter 40\nafter abandoned transaction 40\ndone\n",
        r.domain
    );
    assert_eq!(r.stdout, expected, "stderr: {}", r.stderr);
    assert!(r.driver_output.contains("dom0 reads: written by the guest"), "{}", r.driver_output);
}

#[test]
fn sixteen_threads_get_their_own_xenstore_answers() {
    let r = DOMU.result("xenstore_threads");
    assert_eq!(r.stdout, "16 threads done, 16 keys\n", "stderr: {}", r.stderr);
    assert_eq!(r.status, 0);
}

/// dom0's side of `xenstore hostile`: odd data, a key the guest may not read, and xenstored
/// stopped for a while.
pub const HOSTILE_DOM0: &str = "xenstore-write /local/domain/0/xen-test-secret s3cret
xenstore-chmod /local/domain/0/xen-test-secret n0
wait_output 'ready'
args=''
i=100
while [ $i -lt 400 ]; do args=\"$args /local/domain/$DOMID/data/many/name-of-key-number-$i x\"; i=$((i + 1)); done
xenstore-write $args
xenstore-write /local/domain/$DOMID/data/binary \"$(printf '\\377\\376')\"
wait_output 'stop xenstored'
kill -STOP $(cat /run/xenstored.pid)
echo 'xenstored stopped'
wait_output 'resume xenstored' 60
kill -CONT $(cat /run/xenstored.pid)
echo 'xenstored resumed'
xenstore-write /local/domain/$DOMID/data/resumed yes
";

#[test]
fn odd_and_hostile_xenstore_data_gives_clear_errors() {
    let r = DOMU.result("xenstore_hostile");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_eq!(r.driver_status, Some(0), "driver: {}", r.driver_output);
    let (head, last) = r.stdout.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(
        head,
        "missing: NotFound\nlong path: InvalidInput\nnul in path: InvalidInput\nempty path: InvalidInput\n\
         big value: ArgumentListTooLong\n2000-byte value: 2000 bytes back\n\
         4000-byte value: StorageFull\nready\n\
         binary bytes: [255, 254]\n\
         big folder: 300 names, name-of-key-number-100 to name-of-key-number-399\nbinary as text: InvalidData\ndom0's key: PermissionDenied\n\
         other domain's tree: PermissionDenied\nstop xenstored\nstalled read: Err(TimedOut) after 2 s\n\
         resume xenstored",
        "stderr: {}",
        r.stderr
    );
    assert!(last.starts_with("after resume: domid "), "{last}");
}

#[test]
fn event_channels_signal_between_threads_and_hold_events_while_masked() {
    let r = DOMU.result("event_channels");
    let expected = "ports differ: true\nnothing yet on the unbound end: true\nbind event: true\n\
                    nothing more: true\nearly event seen: true\n\
                    woken: true, after at least 300 ms: true\nreverse: true\nmasked held back: true\n\
                    delivered on unmask: true\nburst: true\nburst merged: true\nbad bind: InvalidInput\n\
                    notify after the peer closed: Ok(())\ndone\n";
    assert_eq!(r.stdout, expected, "stderr: {}", r.stderr);
    assert_eq!(r.status, 0);
}

#[test]
fn as_dom0_there_is_no_xenstore_and_calls_say_so() {
    let r = run("xenstore", Mode::Dom0, &[], &["dom0"]);
    assert_eq!(
        r.stdout,
        "read: Unsupported\nwatch: Unsupported\ndomid: Unsupported\nshutdown requests: Unsupported\n",
        "stderr: {}",
        r.stderr
    );
    assert_eq!(r.status, 0);
}

pub const XL_SHUTDOWN: &str = "wait_output 'ready'\nxl shutdown $DOMID\necho 'asked'\n";
pub const XL_REBOOT: &str = "wait_output 'ready'\nxl reboot $DOMID\necho 'asked'\n";
pub const XL_DESTROY: &str = "wait_output 'ready'\nxl destroy $DOMID\necho 'destroyed'\n";

/// After `xl destroy` of the job before, dom0 holds nothing of it.
pub const LOOK_AROUND_AFTER_DESTROY: &str = "wait_output 'sleeping for'
echo \"domains: $(xl list | awk 'NR > 1 { print $1 }' | tr '\\n' ' ')\"
";

#[test]
fn xl_shutdown_ends_a_program_that_does_not_handle_it_with_143() {
    let r = DOMU.result("shutdown_unhandled");
    assert_eq!(r.stdout, "ready\n", "stderr: {}", r.stderr);
    assert_eq!(r.status, 143, "stderr: {}\ndriver: {}", r.stderr, r.driver_output);
    assert_eq!(r.end, "poweroff");
    assert_eq!(r.driver_status, Some(0), "driver: {}", r.driver_output);
}

#[test]
fn a_program_that_watches_for_shutdown_sees_it_and_ends_itself() {
    let r = DOMU.result("shutdown_handled");
    assert_eq!(r.stdout, "none yet: None\nready\nrequest: Poweroff\ncleaning up\n", "stderr: {}", r.stderr);
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(r.end, "poweroff");
}

#[test]
fn xl_reboot_reboots_with_the_programs_status() {
    let handled = DOMU.result("reboot_handled");
    assert_eq!(handled.stdout, "none yet: None\nready\nrequest: Reboot\ncleaning up\n", "{}", handled.stderr);
    assert_eq!(handled.status, 7, "stderr: {}", handled.stderr);
    assert_eq!(handled.end, "reboot");
    let unhandled = DOMU.result("reboot_unhandled");
    assert_eq!(unhandled.status, 143, "stderr: {}", unhandled.stderr);
    assert_eq!(unhandled.end, "reboot");
}

#[test]
fn xl_destroy_leaves_dom0_in_order_for_the_next_guest() {
    let destroyed = DOMU.result("destroyed");
    assert_eq!(destroyed.stdout, "ready\n");
    assert_eq!(destroyed.status, 125, "no exit record: {}", destroyed.stderr);
    assert_eq!(destroyed.driver_status, Some(0), "driver: {}", destroyed.driver_output);
    let next = DOMU.result("after_a_destroy");
    assert_eq!(next.status, 0, "stderr: {}", next.stderr);
    let domains = next.driver_output.lines().find_map(|l| l.strip_prefix("domains: ")).unwrap();
    assert_eq!(domains.split_whitespace().count(), 2, "Domain-0 and this guest only: {domains}");
}
