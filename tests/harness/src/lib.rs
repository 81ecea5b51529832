//! Helpers for the in-guest tests: building guest programs with the xen toolchain, booting them
//! through `xen-runner`, and building the same programs for Linux to compare against.
//!
//! Dom0 runs boot one QEMU each ([`run`], about 1 s). DomU runs are declared as a list of
//! [`DomUJob`]s in one [`DomUBatch`]: the first test that asks for a result runs the whole list
//! in one dom0 boot (`xen-runner --batch`), and each test then checks its own job's result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

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
    // The programs that test unstable std APIs (`tests/guest`'s feature `unstable`), built the
    // same way for Linux and for Xen.
    cmd.args(["--features", "unstable"]).env("RUSTC_BOOTSTRAP", "1");
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

/// The runner: `$XEN_RUNNER` when set (e.g. `tools/target/release/xen-runner` while working on
/// it), else the xen toolchain's.
pub fn runner() -> PathBuf {
    match std::env::var_os("XEN_RUNNER") {
        Some(path) => path.into(),
        None => toolchain().join("bin/xen-runner"),
    }
}

/// The runner's variables that would change a run behind the test's back.
const RUNNER_VARIABLES: [&str; 8] = [
    "XEN_RUNNER_MODE",
    "XEN_RUNNER_FORWARD",
    "XEN_RUNNER_KERNEL_ARGS",
    "XEN_RUNNER_ENV",
    "XEN_RUNNER_MEMORY",
    "XEN_RUNNER_TIMEOUT",
    "XEN_RUNNER_VCPUS",
    "XEN_RUNNER_LOG",
];

/// Boots `image` through the runner with `options` (runner flags) and `args` (the program's).
pub fn run_image(image: &Path, mode: Mode, options: &[&str], args: &[&str]) -> Run {
    let mut cmd = Command::new(runner());
    cmd.arg("--mode").arg(match mode {
        Mode::Dom0 => "dom0",
        Mode::DomU => "domu",
    });
    cmd.args(["--timeout", "300"]).args(options).arg(image).args(args);
    for var in RUNNER_VARIABLES {
        cmd.env_remove(var);
    }
    // Else the runner would look for the harness crate's own `xen-files/` (docs/fs.md).
    cmd.env_remove("CARGO_MANIFEST_DIR");
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

/// Where a domU job's image comes from.
#[derive(Clone, Copy, Debug)]
pub enum Image {
    /// A binary of `tests/guest`.
    Bin(&'static str),
    /// A function that builds the image and returns its path (called once, before the boot).
    Built(fn() -> PathBuf),
}

/// One guest of the domU batch: a program, its arguments and machine, and optionally a driver
/// script that dom0 runs while the guest runs (`docs/harness.md`, "Driver scripts").
#[derive(Clone, Copy, Debug)]
pub struct DomUJob {
    /// The name its test asks for the result by.
    pub name: &'static str,
    /// The guest image.
    pub image: Image,
    /// The program's arguments.
    pub args: &'static [&'static str],
    /// The program's whole environment.
    pub env: &'static [(&'static str, &'static str)],
    /// Guest memory in MiB (the runner's default, 64, when `None`).
    pub memory_mib: Option<u32>,
    /// Guest vCPUs (1 when `None`).
    pub vcpus: Option<u32>,
    /// After this many seconds dom0 destroys the guest (status 124).
    pub timeout_secs: u32,
    /// A shell script for dom0, run with `sh -e` once the guest exists, with `$DOMID`, `$NAME`,
    /// `$JOB`, `$CONSOLE_LOG` and the helpers `wait_output TEXT [SECS]` and `console_input TEXT`.
    pub driver: Option<&'static str>,
    /// A function that makes the driver script (called once, before the boot), for a script
    /// that carries a built file; it takes the place of `driver`.
    pub built_driver: Option<fn() -> String>,
    /// Lines added to the guest's xl config.
    pub xl: &'static [&'static str],
    /// A folder of the repository packed as the guest's files (`docs/fs.md`).
    pub files: Option<&'static str>,
    /// More kernel options, `xen.OPTION=VALUE` each (`docs/abi.md`).
    pub kernel_args: &'static [&'static str],
    /// The kernel log level (`error` ... `trace`); the job's stderr then has every kernel line
    /// at or above it, not only errors and warnings.
    pub log: Option<&'static str>,
    /// A disk image for the guest's `xvda`: a function that makes it (once; jobs that share a
    /// disk give the same one) and returns its path, whether it is attached read-only, and
    /// its logical sector size (`docs/fs.md`, "Disks").
    pub disk: Option<(fn() -> PathBuf, bool, u32)>,
}

impl DomUJob {
    /// A job that boots `tests/guest`'s binary `bin`.
    pub const fn bin(name: &'static str, bin: &'static str) -> Self {
        Self::new(name, Image::Bin(bin))
    }

    /// A job that boots the image `build` makes.
    pub const fn built(name: &'static str, build: fn() -> PathBuf) -> Self {
        Self::new(name, Image::Built(build))
    }

    const fn new(name: &'static str, image: Image) -> Self {
        Self {
            name,
            image,
            args: &[],
            env: &[],
            memory_mib: None,
            vcpus: None,
            timeout_secs: 120,
            driver: None,
            built_driver: None,
            xl: &[],
            files: None,
            kernel_args: &[],
            log: None,
            disk: None,
        }
    }

    /// Asks the kernel for log lines at `level` and above, all of which the job's stderr then
    /// has.
    pub const fn log(self, level: &'static str) -> Self {
        Self { log: Some(level), ..self }
    }

    /// Gives the guest the disk image `make` returns as `xvda`, read-only if `read_only`.
    pub const fn disk(self, make: fn() -> PathBuf, read_only: bool) -> Self {
        Self { disk: Some((make, read_only, 512)), ..self }
    }

    /// Gives the disk this logical sector size (512 or 4096) in dom0 and so in the guest.
    pub const fn sector_size(self, bytes: u32) -> Self {
        match self.disk {
            Some((make, read_only, _)) => Self { disk: Some((make, read_only, bytes)), ..self },
            None => self,
        }
    }

    /// Passes these kernel options (`xen.ip=...`, ...) on the guest command line.
    pub const fn kernel_args(self, args: &'static [&'static str]) -> Self {
        Self { kernel_args: args, ..self }
    }

    /// Packs this folder (relative to the repository) as the guest's files.
    pub const fn files(self, dir: &'static str) -> Self {
        Self { files: Some(dir), ..self }
    }

    /// Gives the program these arguments.
    pub const fn args(self, args: &'static [&'static str]) -> Self {
        Self { args, ..self }
    }

    /// Gives the program this environment.
    pub const fn env(self, env: &'static [(&'static str, &'static str)]) -> Self {
        Self { env, ..self }
    }

    /// Gives the guest this much memory.
    pub const fn memory(self, mib: u32) -> Self {
        Self { memory_mib: Some(mib), ..self }
    }

    /// Gives the guest this many vCPUs.
    pub const fn vcpus(self, vcpus: u32) -> Self {
        Self { vcpus: Some(vcpus), ..self }
    }

    /// Lets the guest run this long (120 s unless given).
    pub const fn timeout(self, secs: u32) -> Self {
        Self { timeout_secs: secs, ..self }
    }

    /// Runs this script in dom0 while the guest runs.
    pub const fn driver(self, script: &'static str) -> Self {
        Self { driver: Some(script), ..self }
    }

    /// Runs the script `make` returns in dom0 while the guest runs.
    pub const fn built_driver(self, make: fn() -> String) -> Self {
        Self { built_driver: Some(make), ..self }
    }

    /// Adds these lines to the guest's xl config.
    pub const fn xl(self, lines: &'static [&'static str]) -> Self {
        Self { xl: lines, ..self }
    }

    fn manifest_entry(&self) -> serde_json::Value {
        let image = match self.image {
            Image::Bin(bin) => xen_bins().join(bin),
            Image::Built(build) => build(),
        };
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut entry = serde_json::json!({
            "name": self.name,
            "image": image,
            "args": self.args,
            "env": env,
            "timeout": self.timeout_secs,
            "xl": self.xl,
            "kernel_args": self.kernel_args,
        });
        let driver = self.built_driver.map(|make| make()).or_else(|| self.driver.map(String::from));
        let fields = [
            ("memory", self.memory_mib.map(Into::into)),
            ("vcpus", self.vcpus.map(Into::into)),
            ("driver", driver.map(Into::into)),
            ("files", self.files.map(|dir| repo().join(dir).to_string_lossy().into_owned().into())),
            ("log", self.log.map(Into::into)),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                entry[key] = value;
            }
        }
        if let Some((make, read_only, sector_size)) = self.disk {
            entry["disk"] = serde_json::json!({
                "path": make(),
                "read_only": read_only,
                "sector_size": sector_size,
            });
        }
        entry
    }
}

/// What a domU job gave: the run as a single `--mode domu` run would give it, and its driver's
/// output and status.
#[derive(Debug)]
pub struct DomUResult {
    /// The runner's status, the program's stdout, and its stderr with the runner's messages.
    pub run: Run,
    /// What the driver printed (stdout and stderr).
    pub driver_output: String,
    /// The driver's exit status; `None` without a driver (or when it never started).
    pub driver_status: Option<i32>,
    /// How dom0 ended the job: `poweroff`, `reboot`, `crash`, `error`, `timeout`, ...
    pub end: String,
    /// The guest's xl domain name.
    pub domain: String,
    /// Seconds from the job's beginning to its end.
    pub seconds: Option<f64>,
}

impl std::ops::Deref for DomUResult {
    type Target = Run;

    fn deref(&self) -> &Run {
        &self.run
    }
}

/// Every domU job of a test binary, run in one dom0 boot by the first test that needs one.
pub struct DomUBatch {
    jobs: &'static [DomUJob],
    results: OnceLock<Result<Vec<(&'static str, DomUResult)>, String>>,
}

impl DomUBatch {
    /// Declares the batch; nothing runs until [`DomUBatch::result`] is first called.
    pub const fn new(jobs: &'static [DomUJob]) -> Self {
        Self { jobs, results: OnceLock::new() }
    }

    /// Returns the result of the job `name`, running the whole batch first if no test has.
    pub fn result(&self, name: &str) -> &DomUResult {
        assert!(self.jobs.iter().any(|j| j.name == name), "no domU job is named {name:?}");
        let chosen = chosen_jobs();
        if let Some(names) = &chosen {
            assert!(names.iter().any(|n| n == name), "job {name:?} is not in XEN_HARNESS_JOBS={}", names.join(","));
        }
        let results = self.results.get_or_init(|| {
            let jobs: Vec<&DomUJob> = self.jobs.iter().filter(|j| chosen.as_ref().is_none_or(|n| n.iter().any(|n| n == j.name))).collect();
            run_batch(&jobs).map(|r| jobs.iter().map(|j| j.name).zip(r).collect())
        });
        let results = results.as_ref().unwrap_or_else(|why| panic!("the domU batch failed: {why}"));
        &results.iter().find(|(n, _)| *n == name).expect("run above").1
    }
}

/// The jobs `XEN_HARNESS_JOBS` (names, comma-separated) picks for a run while working on them;
/// `None` (every job) when it is unset or empty.
fn chosen_jobs() -> Option<Vec<String>> {
    let names = std::env::var("XEN_HARNESS_JOBS").ok()?;
    let names: Vec<String> = names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
    (!names.is_empty()).then_some(names)
}

/// Runs the jobs through `xen-runner --batch` and reads the results.
fn run_batch(jobs: &[&DomUJob]) -> Result<Vec<DomUResult>, String> {
    let dir = repo().join("target/harness-batch");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let manifest = dir.join(format!("manifest-{}.json", std::process::id()));
    let results = dir.join(format!("results-{}.json", std::process::id()));
    let entries: Vec<serde_json::Value> = jobs.iter().map(|j| j.manifest_entry()).collect();
    let text = serde_json::to_string_pretty(&serde_json::json!({ "jobs": entries })).unwrap();
    std::fs::write(&manifest, text).map_err(|e| format!("writing the manifest: {e}"))?;
    let _ = std::fs::remove_file(&results);
    let mut cmd = Command::new(runner());
    cmd.arg("--batch").arg(&manifest).arg("--results").arg(&results);
    for var in RUNNER_VARIABLES {
        cmd.env_remove(var);
    }
    cmd.env_remove("CARGO_MANIFEST_DIR");
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot start {}: {e}", runner().display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&results).map_err(|e| {
        format!("no results ({e}); the runner exited with {}: {stderr}", out.status)
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let jobs_read = value["jobs"].as_array().ok_or("no jobs in the results")?;
    let read: Vec<DomUResult> = jobs_read.iter().map(domu_result).collect();
    println!(
        "domU batch: {} jobs in {} boot(s), {:.1} s",
        read.len(),
        value["boots"],
        started.elapsed().as_secs_f64()
    );
    for (job, result) in jobs.iter().zip(&read) {
        let seconds = result.seconds.unwrap_or_default();
        println!("  {}: status {}, {} after {seconds:.2} s", job.name, result.status, result.end);
    }
    if read.len() != jobs.len() {
        return Err(format!("{} results for {} jobs: {stderr}", read.len(), jobs.len()));
    }
    Ok(read)
}

fn domu_result(job: &serde_json::Value) -> DomUResult {
    let text = |key: &str| job[key].as_str().unwrap_or_default().to_owned();
    DomUResult {
        run: Run {
            status: job["status"].as_i64().map_or(-1, |s| s as i32),
            stdout: text("stdout"),
            stderr: text("stderr"),
        },
        driver_output: text("driver_output"),
        driver_status: job["driver_status"].as_i64().map(|s| s as i32),
        end: text("end"),
        domain: text("domain"),
        seconds: job["seconds"].as_f64(),
    }
}
