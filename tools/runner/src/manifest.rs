//! Reads a batch manifest: the jobs that `xen-runner --batch` runs one after
//! another in one boot of the Linux dom0 (`docs/runner.md`, "Batches").
//!
//! ```json
//! { "jobs": [
//!     { "name": "exit-42", "image": "target/.../exit_status", "args": ["42"] },
//!     { "name": "talks", "image": "sleeper", "args": ["3"], "timeout": 60,
//!       "driver": "wait_output sleeping\nxenstore-read /local/domain/$DOMID/name\n" }
//! ] }
//! ```
//!
//! Every field but `name` and `image` may be left out; the runner's own options
//! (`--memory`, `--vcpus`, `--env`, `--timeout`, `--log` and their variables) then
//! stand in. `kernel_args` are more kernel options (`xen.OPTION=VALUE`, as `--kernel-arg`
//! takes them). A relative image path is taken from the manifest's folder, as is `files`, a
//! folder packed as the job's files (`docs/fs.md`; a job without it has none, whatever
//! `--files` says).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum as _;
use serde::Deserialize;

use crate::cmdline::LogLevel;
use crate::disk::Disk;

/// One job as the manifest gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    image: PathBuf,
    #[serde(default)]
    args: Vec<String>,
    env: Option<Vec<String>>,
    memory: Option<u32>,
    vcpus: Option<u32>,
    timeout: Option<f64>,
    driver: Option<String>,
    #[serde(default)]
    xl: Vec<String>,
    log: Option<String>,
    files: Option<PathBuf>,
    #[serde(default)]
    kernel_args: Vec<String>,
    disk: Option<DiskEntry>,
}

/// A job's `"disk"`: `{ "path": "IMAGE", "read_only": false, "sector_size": 512 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskEntry {
    path: PathBuf,
    #[serde(default)]
    read_only: bool,
    sector_size: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    jobs: Vec<Entry>,
}

/// What a job that leaves a field out gets: the runner's own options.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// `--env` values.
    pub env: Vec<OsString>,
    /// The job's time limit.
    pub timeout: Option<Duration>,
    /// The kernel log level.
    pub log: Option<LogLevel>,
}

/// One job, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's name, unique in the manifest (results are looked up by it).
    pub name: String,
    /// The guest image.
    pub image: PathBuf,
    /// The program's arguments after `argv[0]`.
    pub args: Vec<OsString>,
    /// `NAME` or `NAME=VALUE` values, as `--env` takes them.
    pub env: Vec<OsString>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// After this long dom0 destroys the guest (status 124).
    pub timeout: Option<Duration>,
    /// A shell script that dom0 runs while the guest runs (`docs/harness.md`).
    pub driver: Option<String>,
    /// Lines added to the end of the job's xl config.
    pub xl_lines: Vec<String>,
    /// The kernel log level.
    pub log: Option<LogLevel>,
    /// The folder packed as the guest's files (`docs/fs.md`).
    pub files: Option<PathBuf>,
    /// More kernel options, `xen.OPTION=VALUE` each (`--kernel-arg`).
    pub kernel_args: Vec<OsString>,
    /// The disk image given to the guest as `xvda` (`docs/fs.md`, "Disks").
    pub disk: Option<Disk>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(String);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ManifestError {}

/// The limits `--memory` and `--vcpus` have too.
const MEMORY_MIB: std::ops::RangeInclusive<u32> = 2..=1 << 20;
const VCPUS: std::ops::RangeInclusive<u32> = 1..=128;

/// Reads a manifest's text; `base` is the folder relative image paths start from.
pub fn parse(text: &str, base: &Path, defaults: &Defaults) -> Result<Vec<Job>, ManifestError> {
    let file: File = serde_json::from_str(text).map_err(|e| ManifestError(e.to_string()))?;
    if file.jobs.is_empty() {
        return Err(ManifestError("the manifest has no jobs".into()));
    }
    let mut jobs: Vec<Job> = Vec::with_capacity(file.jobs.len());
    for (index, entry) in file.jobs.into_iter().enumerate() {
        let context =
            |why: String| ManifestError(format!("job {} ({:?}): {why}", index + 1, entry.name));
        let job = check(&entry, base, defaults).map_err(context)?;
        if jobs.iter().any(|j| j.name == job.name) {
            return Err(context("another job has this name".into()));
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// Checks one entry and fills in the defaults.
fn check(entry: &Entry, base: &Path, defaults: &Defaults) -> Result<Job, String> {
    if entry.name.is_empty() || entry.name.chars().any(char::is_control) {
        return Err("give a name without control characters".into());
    }
    if entry.image.as_os_str().is_empty() {
        return Err("the image is empty".into());
    }
    let memory_mib = entry.memory.unwrap_or(defaults.memory_mib);
    if !MEMORY_MIB.contains(&memory_mib) {
        return Err(format!("memory {memory_mib}: give 2 to 1048576 MiB"));
    }
    let vcpus = entry.vcpus.unwrap_or(defaults.vcpus);
    if !VCPUS.contains(&vcpus) {
        return Err(format!("vcpus {vcpus}: give 1 to 128"));
    }
    let timeout = match entry.timeout {
        None => defaults.timeout,
        Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Some(Duration::from_secs_f64(secs))
        }
        Some(secs) => return Err(format!("timeout {secs}: give a positive number of seconds")),
    };
    let log = match &entry.log {
        None => defaults.log,
        Some(level) => Some(
            LogLevel::from_str(level, false)
                .map_err(|_| format!("log {level:?}: give error, warn, info, debug or trace"))?,
        ),
    };
    for arg in &entry.kernel_args {
        crate::cmdline::check_kernel_arg(arg.as_bytes()).map_err(|e| e.to_string())?;
    }
    if let Some(line) = entry.xl.iter().find(|l| l.chars().any(char::is_control)) {
        return Err(format!("the xl line {line:?} holds a control character (one line each)"));
    }
    Ok(Job {
        name: entry.name.clone(),
        image: base.join(&entry.image),
        args: entry.args.iter().map(OsString::from).collect(),
        env: entry
            .env
            .as_ref()
            .map_or_else(|| defaults.env.clone(), |env| env.iter().map(OsString::from).collect()),
        memory_mib,
        vcpus,
        timeout,
        driver: entry.driver.clone(),
        xl_lines: entry.xl.clone(),
        log,
        files: entry.files.as_ref().map(|dir| base.join(dir)),
        kernel_args: entry.kernel_args.iter().map(OsString::from).collect(),
        disk: match &entry.disk {
            None => None,
            Some(d) if d.path.as_os_str().is_empty() => return Err("the disk's path is empty".into()),
            Some(d) => Some(Disk {
                path: base.join(&d.path),
                read_only: d.read_only,
                sector_size: match d.sector_size.unwrap_or(512) {
                    n @ (512 | 4096) => n,
                    n => return Err(format!("disk sector_size {n}: give 512 or 4096")),
                },
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            memory_mib: 64,
            vcpus: 1,
            env: vec!["HOME=/d".into()],
            timeout: Some(Duration::from_secs(300)),
            log: None,
        }
    }

    fn parse_text(text: &str) -> Result<Vec<Job>, ManifestError> {
        parse(text, Path::new("/m"), &defaults())
    }

    fn error(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_every_field_and_fills_in_defaults() {
        let jobs = parse_text(
            r#"{ "jobs": [
                { "name": "full", "image": "/abs/img", "args": ["a b", ""], "env": ["X=1", "Y"],
                  "memory": 128, "vcpus": 2, "timeout": 2.5, "driver": "echo hi\n",
                  "xl": ["vif = [ \"bridge=xenbr0\" ]"], "log": "debug", "files": "fixtures",
                  "kernel_args": ["xen.ip=10.99.0.20/24"],
                  "disk": { "path": "d.img", "read_only": true, "sector_size": 4096 } },
                { "name": "plain", "image": "rel/img" }
            ] }"#,
        )
        .unwrap();
        assert_eq!(
            jobs[0],
            Job {
                name: "full".into(),
                image: "/abs/img".into(),
                args: vec!["a b".into(), "".into()],
                env: vec!["X=1".into(), "Y".into()],
                memory_mib: 128,
                vcpus: 2,
                timeout: Some(Duration::from_millis(2500)),
                driver: Some("echo hi\n".into()),
                xl_lines: vec!["vif = [ \"bridge=xenbr0\" ]".into()],
                log: Some(LogLevel::Debug),
                files: Some("/m/fixtures".into()),
                kernel_args: vec!["xen.ip=10.99.0.20/24".into()],
                disk: Some(Disk { path: "/m/d.img".into(), read_only: true, sector_size: 4096 }),
            }
        );
        let plain = &jobs[1];
        assert_eq!(plain.image, Path::new("/m/rel/img"), "relative to the manifest's folder");
        assert_eq!((plain.memory_mib, plain.vcpus), (64, 1));
        assert_eq!(plain.env, [OsString::from("HOME=/d")]);
        assert_eq!(plain.timeout, Some(Duration::from_secs(300)));
        assert!(plain.args.is_empty() && plain.driver.is_none() && plain.xl_lines.is_empty());
        assert_eq!(plain.files, None);
        assert_eq!(plain.disk, None);
    }

    #[test]
    fn an_empty_env_list_clears_the_default() {
        let jobs = parse_text(r#"{"jobs": [{"name": "a", "image": "i", "env": []}]}"#).unwrap();
        assert!(jobs[0].env.is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert!(error("").contains("EOF"), "{}", error(""));
        assert!(error("[]").contains("expected struct File"), "{}", error("[]"));
        assert!(error(r#"{"jobs": [{"name": "a"}]}"#).contains("missing field `image`"));
        assert!(error(r#"{"jobs": [], "x": 1}"#).contains("unknown field `x`"));
        let typo = error(r#"{"jobs": [{"name": "a", "image": "i", "memroy": 3}]}"#);
        assert!(typo.contains("unknown field `memroy`"), "{typo}");
        let wrong = error(r#"{"jobs": [{"name": "a", "image": "i", "args": "x"}]}"#);
        assert!(wrong.contains("invalid type: string"), "{wrong}");
        assert!(error(r#"{"jobs": [{"name": "a", "image": "i", "memory": -1}]}"#)
            .contains("invalid value"));
    }

    #[test]
    fn refuses_bad_jobs_and_names_them() {
        let cases = [
            (r#"{"jobs": []}"#, "the manifest has no jobs"),
            (r#"{"jobs": [{"name": "", "image": "i"}]}"#, "job 1 (\"\"): give a name"),
            (r#"{"jobs": [{"name": "a", "image": ""}]}"#, "the image is empty"),
            (
                r#"{"jobs": [{"name": "a", "image": "i"}, {"name": "a", "image": "j"}]}"#,
                "job 2 (\"a\"): another job has this name",
            ),
            (r#"{"jobs": [{"name": "m", "image": "i", "memory": 1}]}"#, "memory 1: give 2"),
            (r#"{"jobs": [{"name": "v", "image": "i", "vcpus": 0}]}"#, "vcpus 0: give 1 to 128"),
            (r#"{"jobs": [{"name": "t", "image": "i", "timeout": 0}]}"#, "timeout 0: give a"),
            (r#"{"jobs": [{"name": "t", "image": "i", "timeout": -3}]}"#, "timeout -3: give"),
            (r#"{"jobs": [{"name": "l", "image": "i", "log": "loud"}]}"#, "log \"loud\": give"),
            (
                r#"{"jobs": [{"name": "x", "image": "i", "xl": ["a = 1\nb = 2"]}]}"#,
                "holds a control character",
            ),
            (r#"{"jobs": [{"name": "a\tb", "image": "i"}]}"#, "without control characters"),
            (
                r#"{"jobs": [{"name": "k", "image": "i", "kernel_args": ["xen.seed=1"]}]}"#,
                "cannot pass kernel option \"xen.seed=1\": the runner sets",
            ),
            (
                r#"{"jobs": [{"name": "d", "image": "i", "disk": {"path": "x", "sector_size": 1024}}]}"#,
                "disk sector_size 1024: give 512 or 4096",
            ),
            (r#"{"jobs": [{"name": "d", "image": "i", "disk": {"path": ""}}]}"#, "disk's path is empty"),
        ];
        for (text, want) in cases {
            let got = error(text);
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}
