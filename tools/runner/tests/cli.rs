//! What the runner refuses before anything boots, with status 2 (no QEMU is started).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

const RUNNER: &str = env!("CARGO_BIN_EXE_xen-runner");

/// A file to give as the image: the refusals come before the runner reads it.
fn image() -> PathBuf {
    let path = std::env::temp_dir().join(format!("xen-runner-cli-{}", std::process::id()));
    std::fs::write(&path, b"not read").unwrap();
    path
}

fn run(args: &[String]) -> Output {
    Command::new(RUNNER)
        .args(["--mode", "domu"])
        .args(args)
        .arg(image())
        .env_remove("XEN_RUNNER_MODE")
        .env_remove("XEN_RUNNER_FORWARD")
        .output()
        .expect("running xen-runner")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_taken_or_repeated_forward_port_is_refused_with_status_2() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let out = run(&["--forward".into(), format!("{taken}:8080")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{taken} (tcp)")), "{stderr}");
    assert!(stderr.contains("pick another host port"), "{stderr}");

    let (a, b) = (free_port(), free_port());
    let out = run(&["--forward".into(), format!("{a}:8080"), "--forward".into(), format!("{b}:8080")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("guest port 8080 (tcp) is given twice"), "{stderr}");
}
