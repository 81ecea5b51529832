//! Runs many guests as domUs in one boot of the Linux dom0 harness
//! (`ci/dom0`), as `xen-runner --mode domu` runs one: the runner's library
//! builds the harness, the xl configs, the jobs archive and QEMU's command
//! line; this module numbers the jobs `/jobs/001`, `/jobs/002`, ... and
//! stamps the harness's markers and the guests' records as they arrive.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xen_runner::cpio::CpioWriter;
use xen_runner::harness::{self, Marker};
use xen_runner::qemu;
use xen_runner::xlcfg::XlConfig;

use crate::dom0::clean;
use crate::output::GuestOutput;
use crate::serial::{Next, Qemu};
use crate::Bench;

/// Longest the Linux dom0 may take to boot and start its toolstack, in seconds (about 6-15 s).
const BOOT_TIMEOUT: f64 = 300.0;
/// Longest one job may take from BEGIN to END by default, in seconds (about 1 s for hello).
pub const JOB_TIMEOUT: f64 = 60.0;
/// Longest from one job's END to the next BEGIN (or ALLDONE), in seconds.
const GAP_TIMEOUT: f64 = 60.0;
/// How many times dom0 is booted again for the jobs left after one stalled.
const MAX_BOOTS: usize = 4;

/// One guest to create.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// The image (the xl config's `kernel`) on the host.
    pub image: PathBuf,
    /// The initramfs (`ramdisk`) of a Linux guest. A job with one has its kernel and initramfs
    /// stored once per dom0 boot for every job that boots the same two files, in
    /// `/jobs/linux-K/` (a folder without `xl.cfg`, which `ci/dom0/init` skips), since
    /// Debian's kernel is 66 MB; an image without one is copied into the job's own folder.
    pub ramdisk: Option<PathBuf>,
    /// A short name for the domain and the logs.
    pub label: String,
    /// The guest command line (the xl config's `extra`).
    pub cmdline: String,
    /// `memory` (and `maxmem`) in MiB.
    pub memory_mib: u32,
    /// `vcpus`; QEMU gets as many CPUs as the most any job of the boot has.
    pub vcpus: u32,
    /// Longest the job may take from BEGIN to END, in seconds, before it counts as stalled.
    pub timeout: f64,
    /// The guest's virtual disk `xvda`, a drive of QEMU's machine that dom0 hands to blkback
    /// (as the runner's `--disk` does).
    pub disk: Option<xen_runner::disk::Disk>,
    /// More lines for the xl config (e.g. the guest's `vif`).
    pub xl_lines: Vec<String>,
    /// A driver script that dom0 runs while the guest runs (`ci/dom0/init`, "Driver scripts"),
    /// in the job's folder, where `files` are too.
    pub driver: Option<String>,
    /// Files put in the job's folder of dom0 (name, mode, contents), e.g. a driver's program.
    pub files: Vec<(String, u32, Vec<u8>)>,
}

/// What became of one job.
#[derive(Debug, Clone, Default)]
pub struct JobResult {
    /// Arrival of `@@XENJOB BEGIN NNN` (printed just before `xl create`).
    pub begin: Option<f64>,
    /// Arrival of `@@XENJOB END NNN HOW`.
    pub end: Option<f64>,
    /// HOW: `poweroff`, `reboot`, `crash` or `error`.
    pub how: Option<String>,
    /// What xl printed, when it failed.
    pub xl: Vec<String>,
    /// The guest's console records.
    pub out: GuestOutput,
    /// The guest's console lines that are not records, without CRs (a Linux guest's output).
    pub text: Vec<String>,
    /// Why the job has no proper ending (it stalled, or never ran).
    pub trouble: Option<String>,
    /// The lines the job's driver printed, and its exit status.
    pub driver: Vec<String>,
    pub driver_exit: Option<i32>,
}

impl JobResult {
    /// Seconds from BEGIN to the program's first stdout line, on the host's clock.
    pub fn to_first_line(&self) -> Option<f64> {
        Some(self.out.first_stdout? - self.begin?)
    }

    /// Seconds from BEGIN to the guest's first record of any kind.
    pub fn to_first_record(&self) -> Option<f64> {
        Some(self.out.first_record? - self.begin?)
    }

    /// xl's own error, the line that says why it refused (`xc: error: ...`), if any.
    pub fn xl_error(&self) -> Option<&str> {
        let errors = || self.xl.iter().filter(|l| l.contains("error"));
        errors()
            .find(|l| l.starts_with("xc:"))
            .or_else(|| errors().next())
            .or(self.xl.first())
            .map(String::as_str)
    }

    /// How the guest's output ended: its exit record, or for a guest that writes none (Linux)
    /// how much it wrote.
    fn out_ending(&self) -> String {
        if self.out.first_record.is_none() && !self.text.is_empty() {
            return format!("{} console lines", self.text.len());
        }
        self.out.ending()
    }

    /// Says how the job went, in a few words.
    pub fn ending(&self) -> String {
        if let Some(trouble) = &self.trouble {
            return trouble.clone();
        }
        match self.how.as_deref() {
            Some("error") => match self.xl_error() {
                Some(why) => format!("xl failed: {why}"),
                None => "xl failed".into(),
            },
            Some(how) => format!("{} ({how})", self.out_ending()),
            None => self.out_ending(),
        }
    }
}

/// Runs `jobs` in as few dom0 boots as possible: one, unless a job stalls, in which case
/// QEMU is stopped and the jobs after it go to a new boot.
pub fn run_jobs(bench: &Bench, jobs: &[Job], tag: &str) -> Result<Vec<JobResult>> {
    let mut results = vec![JobResult::default(); jobs.len()];
    let mut todo: Vec<usize> = (0..jobs.len()).collect();
    let mut boots = 0;
    while !todo.is_empty() {
        if boots == MAX_BOOTS {
            for &i in &todo {
                results[i].trouble = Some(format!("not run: gave up after {MAX_BOOTS} dom0 boots"));
            }
            break;
        }
        boots += 1;
        let batch: Vec<&Job> = todo.iter().map(|&i| &jobs[i]).collect();
        let (got, ran) = boot(bench, &batch, &format!("{tag}-boot{boots}"))?;
        for (k, result) in got.into_iter().enumerate().take(ran) {
            results[todo[k]] = result;
        }
        if ran == 0 {
            bail!("the dom0 harness ran no job (see the logs with --keep-logs)");
        }
        todo.drain(..ran);
    }
    Ok(results)
}

/// Boots dom0 once with `jobs`; returns a result for each and how many of them are done
/// with (ran, stalled or failed): the rest need another boot.
fn boot(bench: &Bench, jobs: &[&Job], tag: &str) -> Result<(Vec<JobResult>, usize)> {
    let dir = bench.work.join(tag);
    std::fs::create_dir_all(&dir)?;
    let harness_dir = harness::find_dir(Some(&bench.repo.join("ci/dom0")))?;
    let build = harness::build(&harness_dir, &bench.cache, false)?;

    let mut cpio = CpioWriter::new(Vec::new());
    cpio.dir("jobs", 0o755)?;
    let read =
        |file: &PathBuf| std::fs::read(file).with_context(|| format!("reading {}", file.display()));
    let mut linux: Vec<(&PathBuf, &PathBuf)> = Vec::new();
    let (drives, which) = xen_runner::disk::drives(jobs.iter().map(|j| j.disk.as_ref()))?;
    for (k, job) in jobs.iter().enumerate() {
        let number = format!("{:03}", k + 1);
        cpio.dir(&format!("jobs/{number}"), 0o755)?;
        let mut config = XlConfig {
            name: format!("xb-{number}-{}", job.label),
            kernel: format!("/jobs/{number}/image"),
            memory_mib: job.memory_mib,
            vcpus: job.vcpus,
            cmdline: job.cmdline.clone(),
            ramdisk: None,
            disk: match (&job.disk, which[k]) {
                (Some(disk), Some(drive)) => {
                    Some(disk.xl_line(&xen_runner::disk::dom0_device(drive)?))
                }
                _ => None,
            },
            extra_lines: job.xl_lines.clone(),
        };
        if let Some(driver) = &job.driver {
            cpio.file(&format!("jobs/{number}/driver"), 0o644, driver.as_bytes())?;
        }
        for (name, mode, bytes) in &job.files {
            cpio.file(&format!("jobs/{number}/{name}"), *mode, bytes)?;
        }
        let Some(ramdisk) = &job.ramdisk else {
            cpio.file(&format!("jobs/{number}/xl.cfg"), 0o644, config.render()?.as_bytes())?;
            cpio.file(&format!("jobs/{number}/image"), 0o644, &read(&job.image)?)?;
            continue;
        };
        let pair = (&job.image, ramdisk);
        let shared = match linux.iter().position(|p| *p == pair) {
            Some(i) => format!("jobs/linux-{}", i + 1),
            None => {
                linux.push(pair);
                let shared = format!("jobs/linux-{}", linux.len());
                cpio.dir(&shared, 0o755)?;
                cpio.file(&format!("{shared}/vmlinux"), 0o644, &read(&job.image)?)?;
                cpio.file(&format!("{shared}/initramfs.cpio"), 0o644, &read(ramdisk)?)?;
                shared
            }
        };
        config.kernel = format!("/{shared}/vmlinux");
        config.ramdisk = Some(format!("/{shared}/initramfs.cpio"));
        cpio.file(&format!("jobs/{number}/xl.cfg"), 0o644, config.render()?.as_bytes())?;
    }
    let archive = cpio.finish()?;
    let initrd = dir.join("initrd.cpio");
    harness::write_initrd(&build.initrd, &archive, &initrd)?;

    let dom0 = qemu::Dom0Linux {
        vmlinux: &build.vmlinux,
        cmdline: harness::LINUX_CMDLINE,
        initrd: &initrd,
    };
    let guest_mib = jobs.iter().map(|j| j.memory_mib).max().unwrap_or(64);
    let cpus = jobs.iter().map(|j| j.vcpus).max().unwrap_or(1);
    let mut machine = qemu::domu_machine(&bench.qemu, &build.xen, "", &dom0, guest_mib, cpus);
    machine.drives = drives;
    let args = machine.args()?;
    eprintln!("bench: booting the Linux dom0 with {} guest jobs", jobs.len());
    let mut qemu = Qemu::spawn(
        &bench.qemu,
        &args,
        &bench.logs.join(format!("{tag}.log")),
        &dir.join("qemu.err"),
    )?;

    let mut results = vec![JobResult::default(); jobs.len()];
    let mut current: Option<usize> = None;
    let mut done = 0;
    let mut deadline = BOOT_TIMEOUT;
    let mut fatal = None;
    let mut stalled = false;
    let mut initrd_kept = true;
    loop {
        let line = match qemu.next(deadline) {
            Next::Line(line) => line,
            Next::Closed => break,
            Next::TimedOut => {
                stalled = true;
                break;
            }
        };
        if initrd_kept {
            // QEMU loads its modules before the firmware prints anything: the copy (some
            // 20 MB) can go now, so that an interrupted benchmark leaves little behind.
            let _ = std::fs::remove_file(&initrd);
            initrd_kept = false;
        }
        let text = xen_runner::framing::split_line(&line.bytes).text;
        match harness::parse_marker(text) {
            Some(Marker::Begin(number)) => {
                let k = job_index(number, jobs.len());
                if let Some(k) = k {
                    results[k].begin = Some(line.at);
                    eprintln!(
                        "bench:   job {}/{}: {} in {} MiB",
                        k + 1,
                        jobs.len(),
                        jobs[k].label,
                        jobs[k].memory_mib
                    );
                }
                current = k;
                deadline = line.at + k.map_or(JOB_TIMEOUT, |k| jobs[k].timeout);
            }
            Some(Marker::End { job, how }) => {
                if let Some(k) = job_index(job, jobs.len()) {
                    results[k].end = Some(line.at);
                    results[k].how = Some(String::from_utf8_lossy(how).into_owned());
                    done = done.max(k + 1);
                    eprintln!("bench:     {}", results[k].ending());
                }
                current = None;
                deadline = line.at + GAP_TIMEOUT;
            }
            Some(Marker::AllDone) => break,
            Some(Marker::Driver(text)) => {
                if let Some(k) = current {
                    results[k].driver.push(clean(text));
                }
            }
            Some(Marker::DriverExit(status)) => {
                if let Some(k) = current {
                    results[k].driver_exit = clean(status).trim().parse().ok();
                }
            }
            Some(Marker::Xen(_)) => {}
            Some(Marker::Other(rest)) => {
                let rest = clean(rest);
                if let Some(xl) = rest.strip_prefix("XL ") {
                    if let Some(k) = current {
                        results[k].xl.push(xl.to_owned());
                    }
                } else if let Some(why) = rest.strip_prefix("FATAL ") {
                    fatal = Some(why.to_owned());
                }
            }
            None => {
                if let Some(k) = current {
                    if xen_runner::framing::split_line(&line.bytes).record.is_some() {
                        results[k].out.feed(line.at, &line.bytes);
                    } else {
                        results[k].text.push(clean(&line.bytes));
                    }
                }
            }
        }
    }
    let ended_at = qemu.elapsed();
    qemu.stop();
    if let Some(why) = fatal {
        bail!("the dom0 harness could not start its toolstack: {why}");
    }
    if let Some(k) = current {
        // Begun, never ended: the guest (or xl) stalled, or QEMU died under it.
        let why = if stalled {
            format!("stalled: no END within {} s of BEGIN", jobs[k].timeout)
        } else {
            format!("QEMU ended {:.1} s into the job", ended_at - results[k].begin.unwrap_or(0.0))
        };
        eprintln!("bench:     {why}");
        results[k].trouble = Some(why);
        done = done.max(k + 1);
    } else if done == 0 && stalled {
        bail!("the Linux dom0 did not start its first job within {BOOT_TIMEOUT} s");
    }
    Ok((results, done))
}

/// The position in the boot's list of the job numbered `number` (from 001).
fn job_index(number: &[u8], count: usize) -> Option<usize> {
    let n: usize = std::str::from_utf8(number).ok()?.trim().parse().ok()?;
    (1..=count).contains(&n).then(|| n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_numbers() {
        assert_eq!(job_index(b"001", 3), Some(0));
        assert_eq!(job_index(b"003", 3), Some(2));
        assert_eq!(job_index(b"004", 3), None);
        assert_eq!(job_index(b"000", 3), None);
        assert_eq!(job_index(b"x", 3), None);
    }

    #[test]
    fn xl_refusals_are_told() {
        let job = JobResult {
            how: Some("error".into()),
            xl: vec![
                "Parsing config from /jobs/001/xl.cfg".into(),
                "xc: error: panic: xg_dom_x86.c:159: count_pgtables: not enough memory".into(),
                "libxl: error: libxl_dom.c:594:libxl__build_dom: xc_dom_build_image failed".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            job.ending(),
            "xl failed: xc: error: panic: xg_dom_x86.c:159: count_pgtables: not enough memory"
        );
    }
}
