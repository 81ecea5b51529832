//! Runs `--mode xl` against a stand-in `xl` on the PATH (these machines
//! have no Xen host): the runner must create the guest from its generated
//! config, relay the console, and destroy the guest at the end.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

mod common;

use common::write_tiny_image;

const RUNNER: &str = env!("CARGO_BIN_EXE_xen-runner");

const FAKE_XL: &str = r#"#!/bin/sh
echo "xl $*" >>"$XL_LOG"
case "$1" in
create)
	cat "$3" >>"$XL_LOG"
	printf '\036Ohello from xl\\x0a\n\036X3\n'
	sleep 30
	;;
esac
"#;

#[test]
fn creates_relays_and_destroys() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let xl = bin.join("xl");
    std::fs::write(&xl, FAKE_XL).unwrap();
    std::fs::set_permissions(&xl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = dir.path().join("app");
    write_tiny_image(&image);
    let log = dir.path().join("log");

    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let started = std::time::Instant::now();
    let out = Command::new(RUNNER)
        .args(["--mode", "xl", "--memory", "32", "--vcpus", "2"])
        .arg(&image)
        .args(["a b"])
        .env("PATH", path)
        .env("XL_LOG", &log)
        .output()
        .unwrap();
    assert!(started.elapsed().as_secs() < 20, "the runner waited for xl to end");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"hello from xl\n");

    let log = std::fs::read_to_string(log).unwrap();
    let mut lines = log.lines();
    assert!(lines.next().unwrap().starts_with("xl create -c /"), "{log}");
    assert!(log.contains("\nkernel = \""), "{log}");
    assert!(log.contains("\nmemory = 32\n"), "{log}");
    assert!(log.contains("\nvcpus = 2\n"), "{log}");
    assert!(log.contains("\nextra = \"xen.console=framed xen.stdin=eof xen.seed="), "{log}");
    assert!(log.contains(" -- app a%20b\"\n"), "{log}");
    assert!(log.contains("\non_crash = \"preserve\"\n"), "{log}");
    assert!(log.lines().last().unwrap().starts_with("xl destroy xr-app-"), "{log}");
}

#[test]
fn print_xl_config_boots_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("app");
    write_tiny_image(&image);
    let out = Command::new(RUNNER)
        .args(["--print-xl-config", "--mode", "domu", "--env", "K=v"])
        .arg(&image)
        .args(["--print-xl-config", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let config = String::from_utf8(out.stdout).unwrap();
    assert!(config.contains("kernel = \"/jobs/001/image\"\n"), "{config}");
    // A single domU run is on dom0's bridge, at the runner's address (docs/runner.md).
    let extra = "extra = \"xen.console=plain xen.ip=10.99.0.2/24 xen.gw=10.99.0.1 K=v -- app \
                 --print-xl-config x\"\n";
    assert!(config.contains(extra), "{config}");
    assert!(config.contains("\nvif = ['bridge=xenbr0']\n"), "{config}");
}

#[test]
fn kernel_args_and_forwards_are_checked_before_anything_boots() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("app");
    write_tiny_image(&image);
    let run = |args: &[&str]| {
        let out = Command::new(RUNNER).args(args).arg(&image).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--kernel-arg", "xen.stdin=console", "--mode", "dom0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the runner sets this option itself"), "{err}");
    let (code, err) = run(&["--forward", "8080:80", "--mode", "dom0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--forward needs --mode domu"), "{err}");
    let (code, err) = run(&["--forward", "80:x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"x\" is not a port"), "{err}");
    // The user's own address replaces the runner's.
    let out = Command::new(RUNNER)
        .args(["--print-xl-config", "--mode", "domu", "--kernel-arg", "xen.ip=10.99.0.9/24"])
        .arg(&image)
        .output()
        .unwrap();
    let config = String::from_utf8(out.stdout).unwrap();
    assert!(config.contains("extra = \"xen.console=plain xen.ip=10.99.0.9/24 -- app\"\n"), "{config}");
}

#[test]
fn refuses_a_file_that_is_no_xen_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("text");
    std::fs::write(&image, "hello").unwrap();
    let out = Command::new(RUNNER).arg(&image).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an ELF image"));

    let out = Command::new(RUNNER).arg("/bin/sh").output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no Xen ELF notes"));
}
