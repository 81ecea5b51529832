//! Drives the Linux dom0 harness of `ci/dom0` for `--mode domu` and `--batch`.
//!
//! `ci/dom0/build.sh OUTDIR` makes `OUTDIR/vmlinux` and `OUTDIR/initrd.cpio`.
//! The runner appends a cpio archive holding, for each job NNN, `/jobs/NNN/xl.cfg`,
//! `/jobs/NNN/image` and optionally `/jobs/NNN/driver`, `/jobs/NNN/timeout` and
//! `/jobs/NNN/forward` (ports dom0 forwards to the guest, `crate::forward`); the
//! harness's init creates the guests one after another and reports on the console:
//!
//! ```text
//! @@XENJOB BEGIN 001
//! <the guest's console, live>
//! @@XENJOB XEN <a line of Xen's log>          (when the guest crashed)
//! @@XENJOB DRIVER <a line the driver printed>
//! @@XENJOB DRIVEREXIT <the driver's status>
//! @@XENJOB END 001 poweroff|reboot|crash|error|timeout
//! @@XENJOB BEGIN 002
//! ...
//! @@XENJOB ALLDONE
//! ```

use std::fs;
use std::io::{self, Write as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::cpio::CpioWriter;

/// The word that starts every harness line.
pub const MARKER: &[u8] = b"@@XENJOB ";

/// The first job's number, as the harness names its folder.
pub const JOB: &str = "001";

/// The first job's image inside dom0 (a single `--mode domu` run has only that job).
pub const JOB_IMAGE: &str = "/jobs/001/image";

/// The first job's packed files inside dom0.
pub const JOB_RAMDISK: &str = "/jobs/001/ramdisk";

/// The most jobs one archive can hold: `/init` runs the folders in name order,
/// which is number order only up to `999`.
pub const MAX_JOBS: usize = 999;

/// Returns the folder name of the job at `index` (from 0): `001`, `002`, ...
pub fn job_number(index: usize) -> String {
    format!("{:03}", index + 1)
}

/// Returns the path inside dom0 of the image of the job at `index`.
pub fn job_image(index: usize) -> String {
    format!("/jobs/{}/image", job_number(index))
}

/// Returns the path inside dom0 of the packed files of the job at `index`.
pub fn job_ramdisk(index: usize) -> String {
    format!("/jobs/{}/ramdisk", job_number(index))
}

/// A line of the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker<'a> {
    /// `BEGIN <job>`: the guest was created.
    Begin(&'a [u8]),
    /// `XEN <line>`: a line of Xen's log.
    Xen(&'a [u8]),
    /// `END <job> <how>`: the guest is gone.
    End {
        /// The job's number.
        job: &'a [u8],
        /// `poweroff`, `reboot`, `crash` or `error`.
        how: &'a [u8],
    },
    /// `DRIVER <line>`: a line the job's driver script printed.
    Driver(&'a [u8]),
    /// `DRIVEREXIT <status>`: the driver's exit status.
    DriverExit(&'a [u8]),
    /// `ALLDONE`: no more jobs.
    AllDone,
    /// A marker this runner does not know.
    Other(&'a [u8]),
}

impl<'a> Marker<'a> {
    /// Returns the text after `@@XENJOB `.
    pub fn text(&self) -> &'a [u8] {
        match *self {
            Self::Begin(t)
            | Self::Xen(t)
            | Self::Other(t)
            | Self::Driver(t)
            | Self::DriverExit(t) => t,
            Self::End { how, .. } => how,
            Self::AllDone => b"ALLDONE",
        }
    }
}

/// Reads a harness line, wherever `@@XENJOB ` starts in the text (a kernel
/// may have put a timestamp before it).
pub fn parse_marker(text: &[u8]) -> Option<Marker<'_>> {
    let at = text.windows(MARKER.len()).position(|w| w == MARKER)?;
    let rest = &text[at + MARKER.len()..];
    let (word, args) = match rest.iter().position(|&b| b == b' ') {
        Some(space) => (&rest[..space], &rest[space + 1..]),
        None => (rest, &b""[..]),
    };
    Some(match word {
        b"BEGIN" => Marker::Begin(args.trim_ascii()),
        b"XEN" => Marker::Xen(args),
        b"END" => {
            let args = args.trim_ascii();
            let (job, how) = match args.iter().position(|&b| b == b' ') {
                Some(space) => (&args[..space], args[space + 1..].trim_ascii()),
                None => (args, &b""[..]),
            };
            Marker::End { job, how }
        }
        b"DRIVER" => Marker::Driver(args),
        b"DRIVEREXIT" => Marker::DriverExit(args.trim_ascii()),
        b"ALLDONE" => Marker::AllDone,
        _ => Marker::Other(rest),
    })
}

/// One job of the archive the runner appends to the harness's initramfs.
#[derive(Debug, Clone, Copy)]
pub struct JobFiles<'a> {
    /// The xl config; its kernel is [`job_image`] of the job's index.
    pub config: &'a str,
    /// The guest image.
    pub image: &'a [u8],
    /// The packed files' archive, the guest's ramdisk ([`job_ramdisk`]).
    pub ramdisk: Option<&'a [u8]>,
    /// A shell script that dom0 runs while the guest runs.
    pub driver: Option<&'a str>,
    /// After this long dom0 destroys the guest and ends the job as `timeout`.
    pub timeout: Option<Duration>,
    /// Ports dom0 forwards to the guest while it runs: lines of
    /// [`crate::forward::Forward::harness_line`].
    pub forward: Option<&'a str>,
}

/// Writes the archive of `jobs`, numbered from `001` in order.
///
/// An image that an earlier job already carries is stored once, with a
/// symbolic link in the later job's folder: a batch often boots one program
/// several times, and each copy would cost dom0 memory and unpacking time.
pub fn jobs_archive(jobs: &[JobFiles<'_>]) -> io::Result<Vec<u8>> {
    if jobs.len() > MAX_JOBS {
        let why = format!("{} jobs, but one archive holds at most {MAX_JOBS}", jobs.len());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    let size = jobs.iter().map(|j| j.image.len() + j.ramdisk.map_or(0, <[u8]>::len) + 4096).sum();
    let mut cpio = CpioWriter::new(Vec::with_capacity(size));
    let mut stored: Vec<([u8; 32], String)> = Vec::new();
    cpio.dir("jobs", 0o755)?;
    for (index, job) in jobs.iter().enumerate() {
        let dir = format!("jobs/{}", job_number(index));
        cpio.dir(&dir, 0o755)?;
        cpio.file(&format!("{dir}/xl.cfg"), 0o644, job.config.as_bytes())?;
        let hash: [u8; 32] = Sha256::digest(job.image).into();
        match stored.iter().find(|(h, _)| *h == hash) {
            Some((_, first)) => {
                cpio.symlink(&format!("{dir}/image"), &format!("../{first}/image"))?
            }
            None => {
                cpio.file(&format!("{dir}/image"), 0o644, job.image)?;
                stored.push((hash, job_number(index)));
            }
        }
        if let Some(ramdisk) = job.ramdisk {
            cpio.file(&format!("{dir}/ramdisk"), 0o644, ramdisk)?;
        }
        if let Some(driver) = job.driver {
            cpio.file(&format!("{dir}/driver"), 0o644, driver.as_bytes())?;
        }
        if let Some(timeout) = job.timeout {
            cpio.file(&format!("{dir}/timeout"), 0o644, timeout_file(timeout).as_bytes())?;
        }
        if let Some(forward) = job.forward {
            cpio.file(&format!("{dir}/forward"), 0o644, forward.as_bytes())?;
        }
    }
    cpio.finish()
}

/// Renders a job's time limit for `/jobs/NNN/timeout`: seconds, to the
/// centisecond /init counts in, never less than one.
fn timeout_file(timeout: Duration) -> String {
    let centis = timeout.as_millis().div_ceil(10).max(1);
    format!("{}.{:02}\n", centis / 100, centis % 100)
}

/// Finds `ci/dom0`: the one given, else one above the runner's executable
/// (a build in `tools/target/...`), else the source tree it was built from.
pub fn find_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        if !dir.join("build.sh").is_file() {
            bail!("the harness directory {} has no build.sh", dir.display());
        }
        return Ok(dir.to_owned());
    }
    let exe = std::env::current_exe().ok();
    let from_exe = exe.iter().flat_map(|exe| exe.ancestors().skip(1)).map(|d| d.join("ci/dom0"));
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/dom0");
    let mut tried = Vec::new();
    for dir in from_exe.chain([built_from]) {
        if dir.join("build.sh").is_file() {
            return Ok(dir);
        }
        tried.push(dir);
    }
    bail!(
        "cannot find the dom0 harness (ci/dom0/build.sh); give --harness-dir or \
         XEN_RUNNER_HARNESS_DIR (looked in {})",
        tried.last().map(|d| d.display().to_string()).unwrap_or_default()
    )
}

/// The harness's build output.
#[derive(Debug, Clone)]
pub struct Dom0Build {
    /// The uncompressed hypervisor the harness's toolstack matches.
    pub xen: PathBuf,
    /// The uncompressed Linux kernel.
    pub vmlinux: PathBuf,
    /// Its initramfs.
    pub initrd: PathBuf,
}

/// The Linux dom0's command line (as `ci/dom0/boot.sh` gives it).
///
/// `rootfstype=ramfs`: the initramfs (the harness's image and every job's
/// files) is unpacked into ramfs, which has no size limit, not into a tmpfs
/// limited to half of dom0's memory left after the kernel and the initrd:
/// a batch's 134 MB initrd did not fit that ("Initramfs unpacking failed:
/// write error"). The initrd's own memory is freed after unpacking.
pub const LINUX_CMDLINE: &str = "console=hvc0 quiet rootfstype=ramfs";

/// Builds the harness into `CACHE/dom0`, or finds it up to date there.
///
/// `build.sh` is incremental (it keeps the downloaded packages and a key of
/// their versions in its output directory), but its check costs package
/// look-ups, so the runner skips it while a stamp holding the hash of every
/// file in the harness directory matches. A lock keeps parallel runners
/// from building into the same directory at once.
pub fn build(dir: &Path, cache: &Path, verbose: bool) -> Result<Dom0Build> {
    let out = cache.join("dom0");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lock = fs::File::create(cache.join("dom0.lock")).context("creating the build lock")?;
    lock.lock().context("locking the dom0 build")?;
    let built = Dom0Build {
        xen: out.join("xen"),
        vmlinux: out.join("vmlinux"),
        initrd: out.join("initrd.cpio"),
    };
    let stamp_file = out.join("runner-stamp");
    let stamp = tree_hash(dir)?;
    let complete = [&built.xen, &built.vmlinux, &built.initrd].iter().all(|f| f.is_file());
    let fresh = fs::read_to_string(&stamp_file).is_ok_and(|s| s.trim() == stamp);
    if !(complete && fresh) {
        eprintln!(
            "xen-runner: building the dom0 harness into {} (once per change of ci/dom0)",
            out.display()
        );
        let mut cmd = Command::new(dir.join("build.sh"));
        cmd.arg(&out);
        // Its progress goes to stderr with --verbose: stdout is the program's.
        if verbose {
            cmd.stdout(io::stderr().as_fd().try_clone_to_owned()?);
        } else {
            cmd.stdout(std::process::Stdio::null());
        }
        let status = cmd.status().with_context(|| format!("running {}/build.sh", dir.display()))?;
        if !status.success() {
            bail!("{}/build.sh {} failed ({status})", dir.display(), out.display());
        }
        for file in [&built.xen, &built.vmlinux, &built.initrd] {
            if !file.is_file() {
                bail!("{}/build.sh made no {}", dir.display(), file.display());
            }
        }
        fs::write(&stamp_file, format!("{stamp}\n")).context("writing the build stamp")?;
    }
    Ok(built)
}

/// Writes the harness's initramfs followed by the job's archive.
pub fn write_initrd(base: &Path, job: &[u8], dest: &Path) -> Result<()> {
    let mut out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut base_file =
        fs::File::open(base).with_context(|| format!("opening {}", base.display()))?;
    let len = std::io::copy(&mut base_file, &mut out)?;
    // Archives start on a 4-byte boundary.
    out.write_all(&vec![0; ((4 - len % 4) % 4) as usize])?;
    out.write_all(job)?;
    Ok(())
}

/// Hashes the paths and contents of every file below `dir`, sorted.
fn tree_hash(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    for rel in files {
        let data = fs::read(dir.join(&rel)).with_context(|| format!("reading {rel}"))?;
        hash.update((rel.len() as u64).to_le_bytes());
        hash.update(rel.as_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(&data);
    }
    Ok(crate::cache::short_hex(&hash.finalize()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_markers() {
        assert_eq!(parse_marker(b"@@XENJOB BEGIN 001"), Some(Marker::Begin(b"001")));
        assert_eq!(
            parse_marker(b"@@XENJOB XEN (XEN) d1v0 Unhandled: vec 14, #PF[0000]"),
            Some(Marker::Xen(b"(XEN) d1v0 Unhandled: vec 14, #PF[0000]"))
        );
        assert_eq!(
            parse_marker(b"@@XENJOB END 001 poweroff"),
            Some(Marker::End { job: b"001", how: b"poweroff" })
        );
        assert_eq!(parse_marker(b"[    7.1] @@XENJOB ALLDONE"), Some(Marker::AllDone));
        assert_eq!(
            parse_marker(b"@@XENJOB END 002 timeout"),
            Some(Marker::End { job: b"002", how: b"timeout" })
        );
        assert_eq!(
            parse_marker(b"@@XENJOB DRIVER  two  spaces "),
            Some(Marker::Driver(b" two  spaces "))
        );
        assert_eq!(parse_marker(b"@@XENJOB DRIVER "), Some(Marker::Driver(b"")));
        assert_eq!(parse_marker(b"@@XENJOB DRIVER"), Some(Marker::Driver(b"")));
        assert_eq!(parse_marker(b"@@XENJOB DRIVEREXIT 143"), Some(Marker::DriverExit(b"143")));
        assert_eq!(
            parse_marker(b"@@XENJOB WARN domain x was still there"),
            Some(Marker::Other(b"WARN domain x was still there"))
        );
        assert_eq!(parse_marker(b"@@XENJOB HELLO x"), Some(Marker::Other(b"HELLO x")));
        assert_eq!(parse_marker(b"(XEN) nothing here"), None);
        assert_eq!(parse_marker(b"@@XENJOBS"), None);
    }

    fn job<'a>(config: &'a str, image: &'a [u8]) -> JobFiles<'a> {
        JobFiles { config, image, ramdisk: None, driver: None, timeout: None, forward: None }
    }

    #[test]
    fn the_job_archive_holds_config_and_image() {
        let bytes = jobs_archive(&[job("name = \"x\"\n", b"\x7fELF")]).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for name in
            ["jobs\0", "jobs/001\0", "jobs/001/xl.cfg\0", "jobs/001/image\0", "TRAILER!!!\0"]
        {
            assert!(text.contains(name), "{name}");
        }
        assert!(!text.contains("driver") && !text.contains("timeout"));
        assert_eq!(bytes.len() % 512, 0);
    }

    #[test]
    fn a_batch_archive_numbers_jobs_and_stores_each_image_once() {
        let image = vec![0x5a; 10_000];
        let other = vec![0xa5; 10_000];
        let jobs = [
            job("one", &image),
            JobFiles { driver: Some("wait_output hi\n"), ..job("two", &other) },
            JobFiles { timeout: Some(Duration::from_millis(2501)), ..job("three", &image) },
            JobFiles { ramdisk: Some(b"070701"), ..job("four", &image) },
            JobFiles { forward: Some("tcp 80 10.99.0.2 80\n"), ..job("five", &image) },
        ];
        let bytes = jobs_archive(&jobs).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for name in [
            "jobs/002/driver\0",
            "jobs/003/timeout\0",
            "jobs/003/xl.cfg\0",
            "jobs/004/ramdisk\0",
            "jobs/005/forward\0",
        ] {
            assert!(text.contains(name), "{name}");
        }
        let link = text.find("jobs/003/image\0").expect("job 3's image");
        assert!(
            text[link..].starts_with("jobs/003/image\0\0\0\0../001/image"),
            "a link to job 1's"
        );
        assert!(text.contains("wait_output hi\n"));
        assert!(text.contains("2.51\n"), "rounded up to centiseconds");
        assert!(bytes.len() < 2 * 10_000 + 4096, "each image once: {}", bytes.len());
    }

    #[test]
    fn job_numbers_and_limits() {
        assert_eq!((job_number(0), job_number(998)), ("001".into(), "999".into()));
        assert_eq!(job_image(0), JOB_IMAGE);
        assert_eq!(job_image(11), "/jobs/012/image");
        assert_eq!(timeout_file(Duration::from_secs(30)), "30.00\n");
        assert_eq!(timeout_file(Duration::from_micros(1)), "0.01\n");
        let many = vec![job("x", b""); MAX_JOBS + 1];
        assert!(jobs_archive(&many).is_err());
    }

    #[test]
    fn concatenates_the_initrd_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        fs::write(&base, b"12345").unwrap();
        let dest = dir.path().join("out");
        write_initrd(&base, b"JOB", &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"12345\0\0\0JOB");
    }

    #[test]
    fn the_tree_hash_follows_contents() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("build.sh"), b"one").unwrap();
        let first = tree_hash(dir.path()).unwrap();
        assert_eq!(first, tree_hash(dir.path()).unwrap());
        fs::write(dir.path().join("build.sh"), b"two").unwrap();
        assert_ne!(first, tree_hash(dir.path()).unwrap());
    }

    #[test]
    fn an_explicit_dir_needs_build_sh() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_dir(Some(dir.path())).is_err());
        fs::write(dir.path().join("build.sh"), b"").unwrap();
        assert_eq!(find_dir(Some(dir.path())).unwrap(), dir.path());
    }
}
