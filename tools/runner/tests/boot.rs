//! Boots real guests on real Xen in QEMU through the `xen-runner` binary.
//!
//! These tests are ignored by default (they need QEMU, Xen's
//! `/boot/xen-4.17-amd64.gz` and gcc, and take a few seconds each); run them
//! with `cargo test -- --ignored`. The `domu` test also builds `ci/dom0`
//! (about a minute the first time, cached after).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const RUNNER: &str = env!("CARGO_BIN_EXE_xen-runner");

/// Builds the fixture guest of `tests/guest` once per test run.
fn fixture() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixture-guest");
        let status = Command::new("gcc")
            .args(["-g", "-O1", "-fno-omit-frame-pointer", "-ffreestanding", "-fno-pic"])
            .args(["-fno-pie", "-fno-stack-protector", "-mno-red-zone", "-mgeneral-regs-only"])
            .args(["-fno-asynchronous-unwind-tables", "-Wno-infinite-recursion"])
            .args(["-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none"])
            .args(["-Wl,--no-warn-rwx-segments", "-Wl,-T"])
            .arg(src.join("guest.ld"))
            .arg(src.join("guest.c"))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("running gcc");
        assert!(status.success(), "building the fixture guest failed");
        out
    })
}

/// Runs the runner on the fixture guest with these runner options and
/// program arguments.
fn run(options: &[&str], args: &[&str]) -> Output {
    Command::new(RUNNER)
        .args(options)
        .arg(fixture())
        .args(args)
        .env_remove("XEN_RUNNER_MODE")
        .output()
        .expect("running xen-runner")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn the_guest_receives_exactly_the_command_line() {
    let out = run(&["--env", "A=x y,z", "--log", "debug"], &["--verbose", "", "%", "a,b"]);
    // The empty argument cannot be carried: refused before booting.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let out = run(&["--env", "A=x y,z", "--log", "debug"], &["--verbose", "%", "a,b", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "xen.console=framed xen.log=debug A=x%20y%2Cz -- guest --verbose %25 a%2Cb -\n"
            .replace("guest", fixture().file_name().unwrap().to_str().unwrap())
    );
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn a_1023_byte_command_line_arrives_whole() {
    let name = fixture().file_name().unwrap().to_str().unwrap().to_owned();
    let fixed = "xen.console=framed -- ".len() + name.len() + 1;
    let arg = "a".repeat(1023 - fixed);
    let out = run(&[], &[&arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 1024);

    let out = run(&[], &[&format!("{arg}b")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("1024 bytes long"), "{}", text(&out.stderr));
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn relays_streams_logs_and_statuses() {
    let out = run(&["--env", "GUEST_ACT=mixed"], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.ends_with("std\\out\nno newline\0"), "{stdout:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("to stderr\n[kernel W] a warning\n"), "{stderr}");
    assert!(!stderr.contains("some info"), "{stderr}");
    assert_eq!(stderr.matches("warning: malformed").count(), 3, "{stderr}");
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn symbolizes_a_crash_report() {
    let out = run(&["--env", "GUEST_ACT=crash"], &[]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "guest crashed: page fault (vector 14) writing address 0xdeadbeef000, at rip 0x"
        ),
        "{stderr}"
    );
    for function in ["report_crash (", "descend (", "start_c (", "guest.c:"] {
        assert!(stderr.contains(function), "no {function} in {stderr}");
    }
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn reports_what_xen_says_when_it_kills_the_guest() {
    let out = run(&["--env", "GUEST_ACT=fault"], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stopped without an exit record"), "{stderr}");
    assert!(stderr.contains("writing address 0x40000000"), "{stderr}");
    assert!(stderr.contains("start_c ("), "{stderr}");
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn no_exit_record_abort_and_timeout() {
    let out = run(&["--env", "GUEST_ACT=noexit"], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Hardware Dom0 halted"));

    let out = run(&["--env", "GUEST_ACT=abort"], &[]);
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));

    let out = run(&["--env", "GUEST_ACT=hang", "--timeout", "4"], &[]);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timeout of 4 s"));
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn sigint_stops_the_guest_with_130() {
    let child = Command::new(RUNNER)
        .args(["--env", "GUEST_ACT=hang"])
        .arg(fixture())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("interrupted"));
}

/// Builds `ci/minimal-guest` once per test run, if it is there.
fn minimal_guest() -> Option<PathBuf> {
    static GUEST: OnceLock<Option<PathBuf>> = OnceLock::new();
    let guest = GUEST.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/minimal-guest");
        if !dir.join("build.sh").is_file() {
            return None;
        }
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("minimal-guest");
        let status = Command::new(dir.join("build.sh")).arg(&out).output().unwrap().status;
        assert!(status.success(), "ci/minimal-guest/build.sh failed");
        Some(out.join("minimal-guest"))
    });
    if guest.is_none() {
        eprintln!("no ci/minimal-guest: skipped");
    }
    guest.clone()
}

#[test]
#[ignore = "boots Xen in QEMU"]
fn boots_the_minimal_guest_as_dom0() {
    let Some(guest) = minimal_guest() else { return };
    let out = Command::new(RUNNER).arg(&guest).env_remove("XEN_RUNNER_MODE").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from the minimal guest\n");
}

#[test]
#[ignore = "boots Xen and a Linux dom0 in QEMU; builds ci/dom0"]
fn boots_the_minimal_guest_as_a_domu() {
    let Some(guest) = minimal_guest() else { return };
    let out = Command::new(RUNNER).args(["--mode", "domu"]).arg(&guest).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from the minimal guest\n");
}
