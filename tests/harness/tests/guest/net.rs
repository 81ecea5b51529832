//! The network device as a domU (docs/net.md): netfront connects to dom0's netback, frames
//! dom0 sends on the bridge reach the program, and frames the program sends reach dom0. The
//! guests have one vif on dom0's bridge `xenbr0`; the drivers give the bridge 10.99.0.1.

use super::DOMU;
use xen_harness::{repo, toolchain};

/// Asserts that `out` holds every one of `lines` (each with its newline, if it has one).
fn assert_has_lines(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
}

/// The xl line that gives a guest its vif.
pub const VIF: &[&str] = &["vif = ['bridge=xenbr0']"];

/// Brings the bridge up with an address, prints its MAC, then (once the guest listens) sends
/// ARP requests from it (broadcasts, which reach every port, the guest's vif among them).
///
/// The bridge's IPv6 (multicast listener reports, `33:33:00:00:00:16`, when a port joins) is
/// switched off first, and the guest takes 8 frames of 10 requests, so noise cannot crowd the
/// requests out (it once took all 3 frames of a run).
pub const ARPING: &str = "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
echo \"bridge $(cat /sys/class/net/xenbr0/address)\"
wait_output 'mac '
arping -c 10 -w 12 -I xenbr0 10.99.0.2 >/dev/null 2>&1 || true
wait_output 'frames' 30
";

/// Lets the guest's ARP requests find 10.99.0.1; reports what dom0's end of the vif counted.
pub const ANSWER_ARP: &str = "ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
echo \"bridge $(cat /sys/class/net/xenbr0/address)\"
wait_output 'arp reply from' 25
echo \"vif rx_packets $(cat /sys/class/net/vif$DOMID.0/statistics/rx_packets)\"
echo \"vif tx_packets $(cat /sys/class/net/vif$DOMID.0/statistics/tx_packets)\"
";

/// examples/rawframes built for Xen.
pub fn rawframes_image() -> std::path::PathBuf {
    let dir = repo().join("examples/rawframes");
    let target = repo().join("target/rawframes-xen");
    let status = std::process::Command::new(toolchain().join("bin/cargo"))
        .current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target", "x86_64-unknown-xen", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "examples/rawframes does not build");
    target.join("x86_64-unknown-xen/release/rawframes")
}

fn bridge_mac(driver_output: &str) -> &str {
    driver_output.lines().find_map(|l| l.strip_prefix("bridge ")).expect("the driver's bridge line")
}

#[test]
fn rawframes_prints_the_arp_requests_dom0_sends() {
    let r = DOMU.result("rawframes");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    let bridge = bridge_mac(&r.driver_output);
    let mut lines = r.stdout.lines();
    let mac = lines.next().and_then(|l| l.strip_prefix("mac ")).expect("the MAC line first");
    assert!(mac.starts_with("00:16:3e:"), "Xen's OUI: {mac}");
    let arp = format!("src {bridge} dst ff:ff:ff:ff:ff:ff type 0x0806 len ");
    assert!(r.stdout.lines().any(|l| l.contains(&arp)), "no ARP request from {bridge}:\n{}", r.stdout);
    assert!(r.stdout.ends_with("8 frames\n"), "{}", r.stdout);
}

#[test]
fn a_frame_the_guest_sends_reaches_dom0_and_is_answered() {
    let r = DOMU.result("net_arp");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_eq!(r.driver_status, Some(0), "driver: {}", r.driver_output);
    let bridge = bridge_mac(&r.driver_output);
    let expected = format!("arp reply from {bridge}: 10.99.0.1 is at {bridge}");
    assert!(r.stdout.contains(&expected), "{}", r.stdout);
    let rx: u64 = r
        .driver_output
        .lines()
        .find_map(|l| l.strip_prefix("vif rx_packets "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the driver's counter");
    assert!(rx >= 1, "dom0's vif received nothing: {}", r.driver_output);
}

#[test]
fn device_errors_are_io_errors() {
    let r = DOMU.result("net_errors");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_has_lines(&r.stdout, &[
        "missing: Err(Unsupported)\n",
        "again: Err(ResourceBusy)\n",
        "empty: true\n",
        "too long: true\n",
        "reopened: Ok(true)\n",
    ]);
}

/// The xl line of a guest with one vif of MTU 1400.
pub const VIF_MTU_1400: &[&str] = &["vif = ['bridge=xenbr0,mtu=1400']"];

/// A dom0 server for the `neighbours` guest (static 10.99.0.29), which connects to it while
/// connects to two addresses nobody has are pending.
pub const NEIGHBOURS: &str = "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
nc -l -p 7005 -e /bin/true &
wait_output 'dead 10.99.0.98:80' 30
";

#[test]
fn connects_to_on_link_addresses_nobody_has_fail_and_starve_nothing() {
    let r = DOMU.result("net_neighbours");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_has_lines(&r.stdout, &[
        "live 10.99.0.1:7005: Ok within 3 s true\n",
        "dead 10.99.0.97:80: HostUnreachable within 2-8 s true\n",
        "dead 10.99.0.98:80: HostUnreachable within 2-8 s true\n",
    ]);
}

/// The xl line of a guest with two vifs on the bridge.
pub const TWO_VIFS: &[&str] = &["vif = ['bridge=xenbr0', 'bridge=xenbr0']"];

/// Gives the bridge an address on two subnets (10.99.0.1/24 and 10.98.0.1/24), answers the
/// `two_vifs` guest's connection on each, connects to it at its address on each, and reports
/// how many packets dom0's end of each of the guest's vifs took from it (while the guest still
/// runs: the counters go with the connection).
pub const TWO_SUBNETS: &str = "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip addr add 10.98.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
printf '#!/bin/sh\nread line\necho \"dom0 got: $line\"\n' > /tmp/reply-$JOB.sh
chmod +x /tmp/reply-$JOB.sh
nc -l -p 7003 -e /tmp/reply-$JOB.sh &
nc -l -p 7004 -e /tmp/reply-$JOB.sh &
wait_output 'listening on 0.0.0.0:8092' 60
echo \"from 10.99.0.28: $(echo hi | nc 10.99.0.28 8092)\"
echo \"vif 0 rx_packets $(cat /sys/class/net/vif$DOMID.0/statistics/rx_packets)\"
echo \"vif 1 rx_packets $(cat /sys/class/net/vif$DOMID.1/statistics/rx_packets)\"
echo \"from 10.98.0.28: $(echo hi | nc 10.98.0.28 8092)\"
";

#[test]
fn std_net_uses_two_vifs_on_two_subnets() {
    let r = DOMU.result("net_two_vifs");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_has_lines(&r.stdout, &[
        "to 10.99.0.1:7003 from 10.99.0.28: \"dom0 got: hello\"\n",
        "to 10.98.0.1:7004 from 10.98.0.28: \"dom0 got: hello\"\n",
        "accepted on 10.99.0.28 from 10.99.0.1: \"hi\\n\"\n",
        "accepted on 10.98.0.28 from 10.98.0.1: \"hi\\n\"\n",
    ]);
    assert_has_lines(&r.driver_output, &["from 10.99.0.28: bye\n", "from 10.98.0.28: bye\n"]);
    // Each subnet's traffic left by its own vif: each of dom0's ends took packets.
    for vif in ["vif 0", "vif 1"] {
        let count: u64 = r
            .driver_output
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{vif} rx_packets ")))
            .and_then(|n| n.trim().parse().ok())
            .expect("the driver's counter");
        assert!(count >= 5, "{vif}: {count} packets from the guest\n{}", r.driver_output);
    }
    assert!(r.stderr.contains("net: vif 1: static [Ipv4(Cidr { address: 10.98.0.28, prefix_len: 24 })"), "{}", r.stderr);
}

/// The xl line of a guest with three vifs on the bridge, the second with an MTU of 1400.
pub const THREE_VIFS: &[&str] = &["vif = ['bridge=xenbr0', 'bridge=xenbr0,mtu=1400', 'bridge=xenbr0']"];

/// Runs `xl network-detach $DOMID DEVID` and prints its status, time and output, then how many
/// vifs the domain has left. xl waits for the frontend to say Closed; a frontend that does not
/// answer makes it give up after 10 s and remove the device by force, with an error.
macro_rules! detach {
    ($devid:literal) => {
        concat!(
            "t0=$(xenjob_now)
xl network-detach $DOMID ",
            $devid,
            " > /tmp/detach-$JOB 2>&1
status=$?
echo \"detach status $status in $(($(xenjob_now) - t0)) cs: $(tr '\\n' ' ' < /tmp/detach-$JOB)\"
echo \"vifs left: $(xl network-list $DOMID | tail -n +2 | wc -l)\"
"
        )
    };
}

/// Detaches the `gone` guest's vif 1 while a thread of it waits there and removes vif 2's
/// backend folder (as a driver domain's death would), then answers its ARP requests on vif 0.
pub const DETACH_RAW: &str = concat!(
    "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
echo \"bridge $(cat /sys/class/net/xenbr0/address)\"
wait_output 'waiting on vif 1 and vif 2' 30
sleep 1
",
    detach!("1"),
    "xenstore-rm /local/domain/0/backend/vif/$DOMID/2 && echo 'vif 2 backend removed'
wait_output 'arp reply from' 30
"
);

/// Connects to the `vif_gone` guest (10.99.0.27:8090, static) and holds the connection open,
/// then detaches its only vif while its threads wait.
pub const DETACH_STACK: &str = concat!(
    "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
wait_output 'listening' 30
mkfifo /tmp/hold-$JOB
(printf 'hello\n'; cat /tmp/hold-$JOB) | nc 10.99.0.27 8090 > /dev/null 2>&1 &
exec 7> /tmp/hold-$JOB
wait_output 'waiting for the vif to go' 30
",
    detach!("0"),
    "wait_output 'loopback through' 30
exec 7>&-
"
);

/// The driver's `detach status S in T cs: OUTPUT` line: (status, centiseconds, xl's output).
fn detach_report(driver_output: &str) -> (i32, u64, &str) {
    let line = driver_output.lines().find_map(|l| l.strip_prefix("detach status ")).expect("the driver's detach line");
    let (status, rest) = line.split_once(" in ").expect("status, then time");
    let (cs, output) = rest.split_once(" cs:").expect("time, then output");
    (status.parse().unwrap(), cs.parse().unwrap(), output.trim())
}

#[test]
fn a_vif_detached_while_a_thread_waits_on_it_fails_its_calls_and_the_other_vif_works() {
    let r = DOMU.result("net_detach_raw");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    let macs: Vec<&str> = r.stdout.lines().filter_map(|l| l.strip_prefix("vif ").and_then(|l| l.split_once(" mac "))).map(|(_, m)| m).collect();
    assert_eq!(macs.len(), 2, "{}", r.stdout);
    assert_ne!(macs[0], macs[1], "two vifs, two MACs");
    // Each MTU from the vif's xenstore `mtu` key (libxl writes the xl line's `mtu=`, else 1500).
    assert!(macs[0].ends_with(" mtu 1500") && macs[1].ends_with(" mtu 1400"), "{macs:?}");
    assert!(r.stdout.contains("vif 1 frame of mtu + 14 bytes: Ok(1414)\n"), "{}", r.stdout);
    assert!(r.stdout.contains("vif 1 frame of mtu + 15 bytes: Err(\"Message too long (os error 90)\")\n"), "{}", r.stdout);
    // xl waits for the frontend to say Closed: an error (or its 10 s timeout) means the guest
    // did not answer the backend's Closing.
    let (status, cs, output) = detach_report(&r.driver_output);
    assert_eq!(status, 0, "xl network-detach: {}", r.driver_output);
    assert!(output.is_empty(), "xl network-detach said: {output}");
    assert!(r.driver_output.contains("vifs left: 2\n"), "{}", r.driver_output);
    assert!(r.driver_output.contains("vif 2 backend removed\n"), "{}", r.driver_output);
    eprintln!("xl network-detach took {cs} cs");
    assert_has_lines(&r.stdout, &[
        "(NetworkDown)",
        "vif 1 send: Err(NetworkDown)\n",
        "vif 1 recv again: Err(NetworkDown)\n",
    ]);
    for vif in ["vif 1", "vif 2"] {
        let line = format!("{vif} recv after ");
        assert!(r.stdout.lines().any(|l| l.starts_with(&line) && l.contains(": NetworkDown (")), "{}", r.stdout);
    }
    let bridge = bridge_mac(&r.driver_output);
    assert!(r.stdout.contains(&format!("arp reply from {bridge}: 10.99.0.1 is at {bridge}")), "vif 0 no longer works:\n{}", r.stdout);
    for vif in ["vif 1", "vif 2"] {
        let line = format!("netfront: {vif}: the backend (domain 0) went away");
        assert!(r.stderr.contains(&line), "the kernel's log says why: {}", r.stderr);
    }
    // At the end the vif still open (vif 0) says goodbye to its backend.
    assert!(r.stderr.contains("netfront: 1 vif(s) disconnected at the end in "), "{}", r.stderr);
}

#[test]
fn sockets_on_a_vif_that_goes_away_fail_with_network_down_and_loopback_still_works() {
    let r = DOMU.result("net_detach_stack");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    let (status, cs, output) = detach_report(&r.driver_output);
    assert_eq!(status, 0, "xl network-detach: {}", r.driver_output);
    assert!(output.is_empty(), "xl network-detach said: {output}");
    assert!(r.driver_output.contains("vifs left: 0\n"), "{}", r.driver_output);
    eprintln!("xl network-detach took {cs} cs");
    // The stack's vif takes its MTU from xenstore (smoltcp's MSS follows from it).
    assert!(r.stderr.contains(", mtu 1400, backend domain 0,"), "{}", r.stderr);
    assert_has_lines(&r.stdout, &[
        "got \"hello\" from 10.99.0.1\n",
        "read: NetworkDown\n",
        "accept on 10.99.0.27: NetworkDown\n",
        "udp recv on 10.99.0.27: NetworkDown\n",
        "write: NetworkDown\n",
        "udp send: NetworkDown\n",
        "accept again: NetworkDown\n",
        "connect to dom0: NetworkUnreachable\n",
        "bind 10.99.0.27: AddrNotAvailable\n",
        "loopback through 0.0.0.0:8090: ping\n",
    ]);
}

// ---- TCP/IP (smoltcp in the kernel) and std::net ----

/// Gives the bridge 10.99.0.1 and starts a busybox udhcpd on it that offers only the given
/// address (each job its own, so dom0's ARP cache never holds a stale MAC), with router and
/// DNS 10.99.0.1; its pid is in $DHCPD. `has_lease` waits until the guest answers ARP for the
/// address.
macro_rules! with_dhcp {
    ($addr:literal, $body:literal) => {
        concat!(
            "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
printf 'start %s\nend %s\ninterface xenbr0\nlease_file /tmp/udhcpd-%s.leases\noption subnet 255.255.255.0\noption router 10.99.0.1\noption dns 10.99.0.1\n' ",
            $addr,
            " ",
            $addr,
            " \"$JOB\" > /tmp/udhcpd-$JOB.conf
: > /tmp/udhcpd-$JOB.leases
udhcpd -f -a 100 /tmp/udhcpd-$JOB.conf > /tmp/udhcpd-$JOB.log 2>&1 &
DHCPD=$!
has_lease() {
    i=0
    until arping -c 1 -w 1 -I xenbr0 ",
            $addr,
            " >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 30 ] || { echo 'no ARP answer from ",
            $addr,
            "'; cat /tmp/udhcpd-$JOB.log; return 1; }
    done
}
",
            $body,
            "kill $DHCPD 2>/dev/null || true
"
        )
    };
}

/// A dom0 server (`nc -l -e`) that answers the guest's line with what it got.
pub const NC_SERVER: &str = with_dhcp!(
    "10.99.0.21",
    "printf '#!/bin/sh\nread line\necho \"dom0 got: $line\"\n' > /tmp/reply-$JOB.sh
chmod +x /tmp/reply-$JOB.sh
nc -l -p 7000 -e /tmp/reply-$JOB.sh &
NC=$!
wait_output 'unreachable: ' 60
kill $NC 2>/dev/null || true
"
);

/// dom0 fetches the guest's page and a 2 MB body.
pub const WGET: &str = with_dhcp!(
    "10.99.0.22",
    "wait_output 'http listening' 30
has_lease
wget -q -O /tmp/page-$JOB http://10.99.0.22:8080/
echo \"page $(cat /tmp/page-$JOB)\"
t0=$(xenjob_now)
wget -q -O /tmp/big-$JOB 'http://10.99.0.22:8080/big?bytes=2000000'
echo \"big took $(($(xenjob_now) - t0)) cs\"
echo \"big $(wc -c < /tmp/big-$JOB) $(sha256sum < /tmp/big-$JOB | cut -d' ' -f1)\"
"
);

/// dom0 fetches the body the `exit_sending` guest writes just before it exits, with a
/// connection to the listener that never accepts open meanwhile (its `nc` ends only if the
/// guest resets it: its stdin, a fifo held open, never ends).
pub const WGET_EXIT: &str = with_dhcp!(
    "10.99.0.30",
    "wait_output 'http listening' 30
has_lease
mkfifo /tmp/hold-$JOB
nc 10.99.0.30 8081 < /tmp/hold-$JOB > /tmp/pending-$JOB 2>&1 &
PENDING=$!
exec 7> /tmp/hold-$JOB
sleep 1
wget -q -O /tmp/exit-$JOB http://10.99.0.30:8080/ || echo \"wget failed: $?\"
echo \"body $(wc -c < /tmp/exit-$JOB) $(sha256sum < /tmp/exit-$JOB | cut -d' ' -f1)\"
sleep 1
if kill -0 $PENDING 2>/dev/null; then echo 'pending connection still open'; kill $PENDING; else echo \"pending connection ended: $(cat /tmp/pending-$JOB)\"; fi
exec 7>&-
"
);

/// dom0 asks the guest's DNS responder (UDP both ways).
pub const NSLOOKUP: &str = with_dhcp!(
    "10.99.0.23",
    "wait_output 'dns listening' 30
has_lease
echo \"nslookup: $(nslookup xen.test 10.99.0.23 2>&1 | tr '\n' ' ')\"
"
);

/// The pattern the `sockets` guest serves (tests/guest/src/bin/sockets.rs).
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 9)) as u8
}

fn sha256_of(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum on the host");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn loopback_tcp_and_udp_behave_as_on_linux() {
    let xen = DOMU.result("net_loopback");
    let linux = xen_harness::run_linux("sockets", &[], &["loopback"]);
    assert_eq!(linux.status, 0, "on Linux: {}", linux.stderr);
    assert_eq!(xen.stdout, linux.stdout, "stdout differs from Linux; stderr: {}", xen.stderr);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert!(xen.stdout.contains("tcp echo 4 of 4 clients x 200000 bytes intact\n"));
    assert!(xen.stdout.ends_with("done\n"));
}

#[test]
fn the_guest_gets_an_address_by_dhcp_and_connects_to_dom0() {
    let r = DOMU.result("net_client");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(r.stdout.contains("connected from 10.99.0.21\n"), "{}\ndriver: {}", r.stdout, r.driver_output);
    assert!(r.stdout.contains("got \"dom0 got: hello from xen\"\n"), "{}", r.stdout);
    assert!(r.stdout.contains("unreachable: TimedOut after >= 2 s true\n"), "{}", r.stdout);
}

#[test]
fn dom0_fetches_a_page_and_a_large_body_from_a_guest_server() {
    let r = DOMU.result("net_http");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_eq!(r.driver_status, Some(0), "driver: {}", r.driver_output);
    assert!(r.driver_output.contains("page <html><body>hello from a Xen guest</body></html>"), "{}", r.driver_output);
    let body: Vec<u8> = (0..2_000_000).map(pattern).collect();
    let expected = format!("big 2000000 {}", sha256_of(&body));
    assert!(r.driver_output.contains(&expected), "want {expected:?} in {}", r.driver_output);
    assert!(r.stdout.contains("served /big?bytes=2000000 (2000000 bytes)\n"), "{}", r.stdout);
}

#[test]
fn data_written_just_before_exit_reaches_the_peer() {
    let r = DOMU.result("net_exit_sending");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(r.stdout.contains("wrote 1000000 bytes; exiting\n"), "{}", r.stdout);
    let body: Vec<u8> = (0..1_000_000).map(pattern).collect();
    let expected = format!("body 1000000 {}", sha256_of(&body));
    assert!(r.driver_output.contains(&expected), "want {expected:?} in {}", r.driver_output);
    assert!(!r.driver_output.contains("wget failed"), "{}", r.driver_output);
    // A connection the program never accepted is reset, not left to time out.
    assert!(r.driver_output.contains("pending connection ended"), "{}", r.driver_output);
}

#[test]
fn udp_both_ways_with_dom0() {
    let r = DOMU.result("net_udp");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(r.stdout.contains("answered type 1 from 10.99.0.1\n"), "{}\ndriver: {}", r.stdout, r.driver_output);
    let line = r.driver_output.lines().find(|l| l.starts_with("nslookup: ")).expect("the driver's nslookup line");
    assert!(line.contains("10.11.12.13"), "{line}");
}

/// Builds an example crate for Xen (`examples/NAME`); returns the image.
fn example_image(name: &str) -> std::path::PathBuf {
    let dir = repo().join("examples").join(name);
    let target = repo().join(format!("target/{name}-xen"));
    let status = std::process::Command::new(toolchain().join("bin/cargo"))
        .current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target", "x86_64-unknown-xen", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "examples/{name} does not build");
    target.join("x86_64-unknown-xen/release").join(name)
}

/// examples/tcp-echo built for Xen.
pub fn tcp_echo_image() -> std::path::PathBuf {
    example_image("tcp-echo")
}

/// examples/http built for Xen.
pub fn http_image() -> std::path::PathBuf {
    example_image("http")
}

/// dom0's `nc` sends two lines to examples/tcp-echo and prints what comes back.
pub const NC_ECHO: &str = with_dhcp!(
    "10.99.0.24",
    "wait_output 'echo server listening' 30
has_lease
printf 'first line\nsecond line\n' | nc 10.99.0.24 7 > /tmp/echo-$JOB
echo \"echoed: $(tr '\n' '|' < /tmp/echo-$JOB)\"
"
);

/// dom0's `wget` fetches examples/http's page and a 1 MB body.
pub const WGET_EXAMPLE: &str = with_dhcp!(
    "10.99.0.25",
    "wait_output 'http server listening' 30
has_lease
wget -q -O /tmp/page-$JOB http://10.99.0.25:8080/
echo \"title $(grep -o '<title>[^<]*' /tmp/page-$JOB)\"
wget -q -O /tmp/big-$JOB 'http://10.99.0.25:8080/big?bytes=1000000'
echo \"big $(wc -c < /tmp/big-$JOB) $(sha256sum < /tmp/big-$JOB | cut -d' ' -f1)\"
wget -q -O /tmp/none-$JOB http://10.99.0.25:8080/nothing-here || echo 'missing page refused'
"
);

#[test]
fn the_tcp_echo_example_echoes_what_dom0_sends() {
    let r = DOMU.result("tcp_echo");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(r.driver_output.contains("echoed: first line|second line|"), "{}", r.driver_output);
    assert!(r.stdout.contains(": echoed 23 bytes\n"), "{}", r.stdout);
}

#[test]
fn the_http_example_serves_dom0_a_page_and_a_large_body() {
    let r = DOMU.result("http");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(r.driver_output.contains("title <title>Rust std on Xen"), "{}", r.driver_output);
    let body: Vec<u8> = (0..1_000_000).map(|i| b'a' + (i % 26) as u8).collect();
    let expected = format!("big 1000000 {}", sha256_of(&body));
    assert!(r.driver_output.contains(&expected), "want {expected:?} in {}", r.driver_output);
    assert!(r.driver_output.contains("missing page refused"), "{}", r.driver_output);
    assert!(r.stdout.contains("GET /big?bytes=1000000\n"), "{}", r.stdout);
}

/// A dom0 server for the statically configured guest (no DHCP server runs).
pub const NC_STATIC: &str = "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
printf '#!/bin/sh\nread line\necho \"dom0 got: $line\"\n' > /tmp/reply-$JOB.sh
chmod +x /tmp/reply-$JOB.sh
nc -l -p 7001 -e /tmp/reply-$JOB.sh &
NC=$!
wait_output 'got ' 60
kill $NC 2>/dev/null || true
";

#[test]
fn static_configuration_and_a_name_through_the_configured_dns_server() {
    let r = DOMU.result("net_static");
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(r.stdout.contains("resolved xen.test to [10.11.12.13:80]\n"), "{}", r.stdout);
    assert!(r.stdout.contains("answered type 1 from 127.0.0.1\n"), "{}", r.stdout);
    assert!(r.stdout.contains("unknown name: Uncategorized\n"), "{}", r.stdout);
    assert!(r.stdout.contains("connected from 10.99.0.26\n"), "{}", r.stdout);
    assert!(r.stdout.contains("got \"dom0 got: hello from xen\"\n"), "{}", r.stdout);
}

// ---- Many connections, and DNS through dom0 ----

/// tests/dom0-client built statically for Linux (Debian's Rust, as the bench's Linux guests
/// are), so that it runs in dom0's busybox initramfs; returns the binary.
fn dom0_client() -> std::path::PathBuf {
    let target = repo().join("target/dom0-client");
    let status = std::process::Command::new("/usr/bin/cargo")
        .current_dir(repo().join("tests/dom0-client"))
        .args(["build", "--release", "--quiet", "--target", "x86_64-unknown-linux-gnu", "--target-dir"])
        .arg(&target)
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .expect("cannot run /usr/bin/cargo");
    assert!(status.success(), "tests/dom0-client does not build");
    target.join("x86_64-unknown-linux-gnu/release/dom0-client")
}

/// The file gzipped, in base64 (76 characters a line), as busybox's `base64 -d | gunzip` in
/// dom0 takes it back.
fn gzip_base64(file: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "gzip -9c \"$1\" > \"$1.gz\" && base64 \"$1.gz\"", "sh"])
        .arg(file)
        .output()
        .expect("sh on the host");
    assert!(out.status.success(), "gzip, base64: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `script` with tests/dom0-client unpacked before it as `/tmp/dom0-client-$JOB`: the driver
/// carries it, as the runner has no field for files of dom0's own. FIXME: such a field would
/// spare the 0.8 MB of base64 in the script.
fn carrying_the_client(script: &str) -> String {
    format!(
        "base64 -d <<'EOF' | gunzip > /tmp/dom0-client-$JOB\n{}EOF\nchmod +x /tmp/dom0-client-$JOB\n{script}",
        gzip_base64(&dom0_client())
    )
}

/// dom0 makes 1,000 connections one after another to examples/http, then 100 open at once,
/// each checked by tests/dom0-client.
pub fn many_connections_driver() -> String {
    carrying_the_client(with_dhcp!(
        "10.99.0.27",
        "wait_output 'http server listening' 30
has_lease
/tmp/dom0-client-$JOB 10.99.0.27:8080 sequential 1000 || true
/tmp/dom0-client-$JOB 10.99.0.27:8080 concurrent 100 || true
"
    ))
}

/// Reads the client's `MODE: OK of N succeeded, FAILED failed, in MS ms` line.
fn tally<'a>(driver_output: &'a str, mode: &str) -> (u32, u32, u32, &'a str) {
    let prefix = format!("{mode}: ");
    let line = driver_output
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains(" succeeded, "))
        .unwrap_or_else(|| panic!("no {mode} line in the driver's output:\n{driver_output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |at: usize| words.get(at).and_then(|w| w.trim_end_matches(',').parse().ok());
    match (number(1), number(3), number(5)) {
        (Some(ok), Some(n), Some(failed)) => (ok, n, failed, line),
        _ => panic!("cannot read {line:?}"),
    }
}

#[test]
fn a_thousand_sequential_and_a_hundred_concurrent_connections_all_succeed() {
    let r = DOMU.result("http_connections");
    let everything = format!("stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_eq!(r.driver_status, Some(0), "{everything}");
    let (ok, n, failed, line) = tally(&r.driver_output, "sequential");
    println!("{line}");
    assert_eq!((ok, n, failed), (1000, 1000, 0), "{everything}");
    assert!(r.driver_output.contains("concurrent: 100 of 100 open at once\n"), "{everything}");
    let (ok, n, failed, line) = tally(&r.driver_output, "concurrent");
    println!("{line}");
    assert_eq!((ok, n, failed), (100, 100, 0), "{everything}");
    // The server counted every request and ended by itself.
    assert_eq!(r.status, 0, "{everything}");
    assert_eq!(r.stdout.matches("GET /big?bytes=").count(), 1100, "{everything}");
}

/// dom0's dnsmasq answers for `xen.test` (and only it: `--local`), with `dom0.xen.test` as the
/// bridge's address, where `nc -l` answers the guest's line; DHCP names 10.99.0.1 as the DNS
/// server. Prints the queries dnsmasq logged.
pub const DNSMASQ: &str = with_dhcp!(
    "10.99.0.28",
    "dnsmasq --keep-in-foreground --no-resolv --no-hosts --listen-address=10.99.0.1 \\
    --bind-interfaces --local=/xen.test/ --host-record=dom0.xen.test,10.99.0.1 --log-queries \\
    --log-facility=/tmp/dnsmasq-$JOB.log --pid-file= &
DNSMASQ=$!
printf '#!/bin/sh\nread line\necho \"dom0 got: $line\"\n' > /tmp/reply-$JOB.sh
chmod +x /tmp/reply-$JOB.sh
nc -l -p 7002 -e /tmp/reply-$JOB.sh &
NC=$!
wait_output 'got ' 60
grep -F 'query[' /tmp/dnsmasq-$JOB.log | sed 's/.*query/dnsmasq: query/'
kill $NC $DNSMASQ 2>/dev/null || true
"
);

#[test]
fn a_name_resolves_through_dom0_s_dns_server() {
    let r = DOMU.result("net_dns");
    let everything = format!("stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert_eq!(r.status, 0, "{everything}");
    assert_eq!(r.driver_status, Some(0), "{everything}");
    assert!(r.stdout.contains("resolved dom0.xen.test to [10.99.0.1:7002]\n"), "{everything}");
    assert!(r.stdout.contains("unknown name: Uncategorized\n"), "{everything}");
    assert!(r.stdout.contains("connected from 10.99.0.28\n"), "{everything}");
    assert!(r.stdout.contains("got \"dom0 got: hello from xen\"\n"), "{everything}");
    // The answers came from dnsmasq, which saw both questions from the guest's address.
    for name in ["dom0.xen.test", "nowhere.xen.test"] {
        let query = format!("dnsmasq: query[A] {name} from 10.99.0.28\n");
        assert!(r.driver_output.contains(&query), "{query:?} missing; {everything}");
    }
}

// ---- 100 MB each way ----

/// How many bytes go each way in `net_bulk_100mb`: 100 MB (10^8 bytes).
pub const BULK_BYTES: u64 = 100_000_000;

/// The `net_bulk_100mb` guest's arguments: its port, [`BULK_BYTES`], and where dom0's client
/// listens for its connection.
pub const BULK_ARGS: &[&str] = &["9000", "100000000", "10.99.0.1:9001"];

/// dom0's tests/dom0-client sends [`BULK_BYTES`] to the guest's `bulk` (the guest checks them
/// and reports), then takes the guest's connection and checks the [`BULK_BYTES`] it sends.
/// dom0 pings the guest all along: the answers must come while the guest's tx buffers are
/// busy with the bulk send.
pub fn bulk_driver() -> String {
    carrying_the_client(with_dhcp!(
        "10.99.0.29",
        "wait_output 'bulk listening' 30
has_lease
ping -i 0.2 10.99.0.29 > /tmp/ping-$JOB 2>&1 &
PING=$!
/tmp/dom0-client-$JOB 10.99.0.29:9000 bulk 100000000 10.99.0.1:9001 || echo \"dom0-client failed: $?\"
kill -INT $PING 2>/dev/null || true
wait $PING || true
grep 'packets transmitted' /tmp/ping-$JOB || echo 'ping: no summary'
"
    ))
}

/// The report in the line `DIRECTION: VERB REPORT...` of `output` (`received` or `the receiver
/// reported`), and the line.
fn bulk_report<'a>(output: &'a str, prefix: &str) -> (bulk::Report, &'a str) {
    let line = output
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{output}"));
    let rest = &line[prefix.len()..];
    let report = rest.split(" in ").next().unwrap().split(": ").next().unwrap();
    (report.parse().unwrap_or_else(|e| panic!("{e} in {line:?}")), line)
}

/// The SHA-256 (by the host's `sha256sum`) of the [`BULK_BYTES`] the pattern of `seed` gives.
fn bulk_sha256(seed: u64) -> String {
    let mut bytes = vec![0; BULK_BYTES as usize];
    bulk::fill(seed, 0, &mut bytes);
    sha256_of(&bytes)
}

/// Checks the direction `name` (`dom0->guest`, `guest->dom0`) of the `net_bulk_100mb` job: the
/// sender's hash is the pattern's, the receiver got exactly [`BULK_BYTES`] with that hash and
/// every byte as sent, and told the sender so. Prints both ends' figures.
fn assert_bulk_direction(r: &xen_harness::DomUResult, name: &str, seed: u64) {
    let everything =
        format!("stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    let (sender, receiver) = if name.starts_with("dom0") {
        (&r.driver_output, &r.stdout)
    } else {
        (&r.stdout, &r.driver_output)
    };
    let want =
        bulk::Report { bytes: BULK_BYTES, sha256: bulk_sha256(seed), first_difference: None };
    let sent = sender
        .lines()
        .find(|l| l.starts_with(&format!("{name}: sent ")))
        .unwrap_or_else(|| panic!("no {name} sent line; {everything}"));
    let sent_sha256 = sent.split_whitespace().nth(5).unwrap_or_default();
    assert_eq!(sent_sha256, want.sha256, "{name}: not the pattern's hash; {everything}");
    let (got, line) = bulk_report(receiver, &format!("{name}: received "));
    assert_eq!(got, want, "{line}; {everything}");
    let (told, told_line) = bulk_report(sender, &format!("{name}: the receiver reported "));
    assert_eq!(told, want, "{told_line}; {everything}");
    assert!(told_line.ends_with(": agrees"), "{told_line}; {everything}");
    println!("{sent}\n{line}");
}

#[test]
fn net_bulk_100mb_arrive_intact_each_way() {
    let r = DOMU.result("net_bulk_100mb");
    assert_bulk_direction(r, "dom0->guest", bulk::DOM0_TO_GUEST);
    assert_bulk_direction(r, "guest->dom0", bulk::GUEST_TO_DOM0);
    let everything =
        format!("stdout: {}\nstderr: {}\ndriver: {}", r.stdout, r.stderr, r.driver_output);
    assert!(!r.driver_output.contains("dom0-client failed"), "{everything}");
    assert_eq!(r.driver_status, Some(0), "{everything}");
    assert_eq!(r.status, 0, "{everything}");
    // busybox ping: "N packets transmitted, M packets received, ..." (the last may be in
    // flight when it is stopped).
    let line = r
        .driver_output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary; {everything}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let count = |word: &str| -> u32 {
        let at = words.iter().position(|w| w.trim_end_matches(',') == word);
        at.and_then(|at| words.get(at.checked_sub(2)?)?.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}"))
    };
    let (sent, answered) = (count("transmitted"), count("received"));
    println!("ping during the transfers: {line}");
    assert!(sent >= 5, "{line}; {everything}");
    assert!(answered + 1 >= sent, "pings unanswered during the bulk transfers: {line}; {everything}");
}
