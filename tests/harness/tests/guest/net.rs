//! The network device as a domU (docs/net.md): netfront connects to dom0's netback, frames
//! dom0 sends on the bridge reach the program, and frames the program sends reach dom0. The
//! guests have one vif on dom0's bridge `xenbr0`; the drivers give the bridge 10.99.0.1.

use super::DOMU;
use xen_harness::{repo, toolchain};

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
    for line in [
        "missing: Err(Unsupported)\n",
        "again: Err(ResourceBusy)\n",
        "empty: true\n",
        "too long: true\n",
        "reopened: Ok(true)\n",
    ] {
        assert!(r.stdout.contains(line), "{line:?} missing from:\n{}", r.stdout);
    }
}
