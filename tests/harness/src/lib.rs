//! Helpers for the in-guest tests: building guest programs with the xen toolchain, booting them
//! through `xen-runner`, and building the same programs for Linux to compare against.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The xen toolchain's folder, as `tools/install` puts it.
pub fn toolchain() -> PathBuf {
    if let Some(dir) = std::env::var_os("XEN_TOOLCHAIN") {
        return dir.into();
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share"));
    data.join("xen-rust/toolchain")
}

fn cargo_build(crate_dir: &Path, cargo: &Path, target: Option<&str>, target_dir: &Path) -> PathBuf {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate_dir).args(["build", "--release", "--quiet", "--bins"]);
    cmd.arg("--target-dir").arg(target_dir);
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    // The host build must not pick up the xen toolchain's wrappers.
    cmd.env_remove("RUSTC").env_remove("RUSTDOC");
    let status = cmd.status().expect("cannot run cargo");
    assert!(status.success(), "building {} failed", crate_dir.display());
    match target {
        Some(target) => target_dir.join(target).join("release"),
        None => target_dir.join("release"),
    }
}

/// The folder of `tests/guest`'s binaries built for Xen (built once per test process).
pub fn xen_bins() -> &'static Path {
    static BINS: OnceLock<PathBuf> = OnceLock::new();
    BINS.get_or_init(|| {
        let repo = repo();
        cargo_build(
            &repo.join("tests/guest"),
            &toolchain().join("bin/cargo"),
            Some("x86_64-unknown-xen"),
            &repo.join("target/guest-tests"),
        )
    })
}

/// The folder of `tests/guest`'s binaries built for Linux, with Debian's Rust 1.96.0.
pub fn linux_bins() -> &'static Path {
    static BINS: OnceLock<PathBuf> = OnceLock::new();
    BINS.get_or_init(|| {
        let repo = repo();
        let mut dir = repo.join("target/guest-tests-linux");
        std::fs::create_dir_all(&dir).unwrap();
        dir = cargo_build(&repo.join("tests/guest"), Path::new("/usr/bin/cargo"), None, &dir);
        dir
    })
}

/// One run of a guest program.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            // A process killed by a signal counts as 128 + the signal, as a shell says.
            status: out.status.code().or(out.status.signal().map(|s| 128 + s)).unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Where a guest runs.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Dom0,
    DomU,
}

/// Boots `image` through the runner with `options` (runner flags) and `args` (the program's).
pub fn run_image(image: &Path, mode: Mode, options: &[&str], args: &[&str]) -> Run {
    let mut cmd = Command::new(toolchain().join("bin/xen-runner"));
    cmd.arg("--mode").arg(match mode {
        Mode::Dom0 => "dom0",
        Mode::DomU => "domu",
    });
    cmd.args(["--timeout", "300"]).args(options).arg(image).args(args);
    for var in ["XEN_RUNNER_MODE", "XEN_RUNNER_ENV", "XEN_RUNNER_MEMORY", "XEN_RUNNER_TIMEOUT"] {
        cmd.env_remove(var);
    }
    cmd.output().expect("cannot start xen-runner").into()
}

/// Boots `tests/guest`'s binary `name` on Xen.
pub fn run(name: &str, mode: Mode, options: &[&str], args: &[&str]) -> Run {
    run_image(&xen_bins().join(name), mode, options, args)
}

/// Runs `tests/guest`'s binary `name` on Linux, with `env` as its whole environment.
pub fn run_linux(name: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;
    Command::new(linux_bins().join(name))
        .arg0(name)
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("cannot run the Linux build")
        .into()
}

/// The panic line with the OS thread id (which differs between Linux and Xen) taken out.
pub fn without_thread_ids(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let close = line.find(") panicked").or(line.find(") has overflowed"));
        match (line.find("' ("), close) {
            (Some(open), Some(close)) if open < close => {
                out.push_str(&line[..open + 1]);
                out.push_str(&line[close + 1..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
