//! Runs the jobs of a manifest one after another in one boot of the Linux
//! dom0 (`xen-runner --batch`), and writes one result per job.
//!
//! Each job goes through the steps of a single `--mode domu` run: the same
//! image check, command line and xl config ([`run::prepare`]), the same
//! console decoding (a [`Console`](crate::console::Console) per job, from
//! [`Demux`]), and the same verdict ([`run::report`]): status mapping, crash
//! report, stack-overflow detection. What differs is that the boot goes on
//! after a job's exit record, to the job's end and the next job.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::console::{self, Event};
use crate::disk;
use crate::demux::{Demux, Finish, Happening, JobOutcome};
use crate::harness::{self, JobFiles};
use crate::manifest::{self, Defaults, Job};
use crate::run::{self, Guest, Judge, Mode, Platform, Prepared};
use crate::session::{End, Incoming, Session};
use crate::status;
use crate::xlcfg;

/// How long the Linux dom0 may take to boot to its first job.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(120);

/// How long dom0 may take past a job's timeout to end it: it destroys the
/// guest at the timeout, waits up to 5 s for xl, and gives the driver up to
/// 10 s after the guest is gone.
const JOB_GRACE: Duration = Duration::from_secs(30);

/// How long dom0 may take from one job's end to the next one's beginning.
const BETWEEN_JOBS: Duration = Duration::from_secs(60);

/// What `--batch` needs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// The manifest (JSON).
    pub manifest: PathBuf,
    /// Where the results go; `None` is stdout.
    pub results: Option<PathBuf>,
    /// What jobs that leave a field out get.
    pub defaults: Defaults,
    /// `ci/dom0`, when given.
    pub harness_dir: Option<PathBuf>,
    /// The hypervisor; `None` takes the harness's.
    pub xen: Option<PathBuf>,
    /// More options for Xen's command line.
    pub xen_args: String,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// Show the whole console and each job's ending on stderr.
    pub verbose: bool,
}

impl BatchOptions {
    fn platform(&self) -> Platform<'_> {
        Platform {
            harness_dir: self.harness_dir.as_deref(),
            xen: self.xen.as_deref(),
            xen_args: &self.xen_args,
            qemu: &self.qemu,
            verbose: self.verbose,
        }
    }
}

/// The results file.
#[derive(Debug, Serialize)]
pub struct Results {
    /// One result per job, in the manifest's order.
    pub jobs: Vec<JobResult>,
    /// How many times dom0 was booted (more than one when a boot ended early).
    pub boots: usize,
    /// Wall-clock seconds of the whole batch.
    pub seconds: f64,
}

/// What one job gave.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    /// The job's name from the manifest.
    pub name: String,
    /// The runner's exit status, as a single `--mode domu` run would give it.
    pub status: u8,
    /// The program's stdout (invalid UTF-8 replaced; see `stdout_base64`).
    pub stdout: String,
    /// The exact bytes, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    /// The program's stderr and the runner's messages, as a single run prints them.
    pub stderr: String,
    /// The exact bytes, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    /// What the driver printed (stdout and stderr together).
    pub driver_output: String,
    /// The driver's exit status; `null` when the job has no driver or it never started.
    pub driver_status: Option<i32>,
    /// How the harness ended the job (`poweroff`, `reboot`, `crash`, `error`,
    /// `timeout`), else `refused` (before booting, as a single run would be),
    /// `not-run` (the boot ended before it) or `unfinished` (during it).
    pub end: String,
    /// In a few words, what decided the status.
    pub why: String,
    /// The xl domain name the guest had.
    pub domain: String,
    /// Seconds from the harness's beginning of the job to its end.
    pub seconds: Option<f64>,
    /// Which boot ran it (from 1).
    pub boot: Option<usize>,
}

/// A job ready to boot.
struct Ready {
    index: usize,
    prepared: Prepared,
    /// What the runner said while preparing it (warnings), for its stderr.
    said: Vec<u8>,
}

/// Runs the batch and returns the runner's exit status: 0 when every job
/// ran (whatever its own status), 125 when some could not, 2 for a bad
/// manifest, 130 and so on after a signal.
pub fn run_batch(opts: &BatchOptions) -> Result<u8> {
    let started = Instant::now();
    let jobs = match read_manifest(&opts.manifest, &opts.defaults) {
        Ok(jobs) => jobs,
        Err(why) => {
            eprintln!("xen-runner: error: {why:#}");
            return Ok(status::STATUS_USAGE);
        }
    };
    let mut results: Vec<Option<JobResult>> = vec![None; jobs.len()];
    let mut pending = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        match prepare_job(job, index) {
            Ok(ready) => pending.push(ready),
            Err(result) => results[index] = Some(*result),
        }
    }
    let mut boots = 0;
    let mut signal = None;
    while !pending.is_empty() {
        boots += 1;
        let rest = pending.split_off(pending.len().min(harness::MAX_JOBS));
        let boot = match boot(opts, &jobs, &pending, boots) {
            Ok(boot) => boot,
            // Nothing booted (QEMU missing, the harness's build failed, ...).
            Err(why) => {
                let why = format!("{why:#}");
                for ready in pending.drain(..).chain(rest) {
                    results[ready.index] = Some(not_run(&jobs[ready.index], &ready, &why));
                }
                break;
            }
        };
        let retry = boot.progressed() && boot.signal().is_none();
        signal = signal.or(boot.signal());
        let mut again = Vec::new();
        for (ready, outcome) in pending.into_iter().zip(boot.outcomes) {
            let job = &jobs[ready.index];
            match outcome {
                Some(result) => results[ready.index] = Some(result),
                None if retry => again.push(ready),
                None => results[ready.index] = Some(not_run(job, &ready, &boot.why_not)),
            }
        }
        again.extend(rest);
        pending = again;
        if signal.is_some() {
            for ready in pending.drain(..) {
                let why = "the runner was stopped by a signal first".to_owned();
                results[ready.index] = Some(not_run(&jobs[ready.index], &ready, &why));
            }
        }
    }
    let results = Results {
        jobs: results.into_iter().map(|r| r.expect("every job has a result")).collect(),
        boots,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_results(opts.results.as_deref(), &results)?;
    Ok(match signal {
        Some(signal) => signal_status(signal),
        None if results.jobs.iter().any(|r| r.end == "not-run") => status::STATUS_NO_EXIT,
        None => 0,
    })
}

fn read_manifest(path: &Path, defaults: &Defaults) -> Result<Vec<Job>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    manifest::parse(&text, base, defaults).with_context(|| format!("in {}", path.display()))
}

/// The xl domain name of the job at `index`: unique in the boot and among runners.
fn domain_name(job: &Job, index: usize) -> String {
    format!("{}-{}", xlcfg::domain_name(&job.name, std::process::id()), index + 1)
}

/// Prepares a job as a single run does; a job that cannot boot gets its
/// result at once.
fn prepare_job(job: &Job, index: usize) -> Result<Ready, Box<JobResult>> {
    let name = domain_name(job, index);
    let guest = Guest {
        image: &job.image,
        args: &job.args,
        env: &job.env,
        files: job.files.as_deref(),
        memory_mib: job.memory_mib,
        vcpus: job.vcpus,
        log: job.log,
        name: Some(&name),
        disk: job.disk.as_ref(),
        xl_lines: &job.xl_lines,
        kernel_args: &job.kernel_args,
        console_input: job.driver.is_some(),
    };
    let mut said = Vec::new();
    let status = match run::prepare(&guest, Mode::Domu, false, &mut said) {
        Ok(Ok(prepared)) => return Ok(Ready { index, prepared, said }),
        Ok(Err(status)) => status,
        Err(why) => {
            let _ = writeln!(said, "xen-runner: error: {why:#}");
            status::STATUS_NO_EXIT
        }
    };
    let (stdout, stdout_base64) = text_of(Vec::new());
    let (stderr, stderr_base64) = text_of(said);
    Err(Box::new(JobResult {
        name: job.name.clone(),
        status,
        stdout,
        stdout_base64,
        stderr,
        stderr_base64,
        driver_output: String::new(),
        driver_status: None,
        end: "refused".into(),
        why: "refused before booting".into(),
        domain: name,
        seconds: None,
        boot: None,
    }))
}

/// What one boot gave.
struct Boot {
    /// A result for each job that began, in the order booted.
    outcomes: Vec<Option<JobResult>>,
    /// How the boot stopped.
    stop: Stop,
    /// Why the jobs that did not begin did not.
    why_not: String,
}

impl Boot {
    /// Tells whether some job began: then booting again for the rest is worth it.
    fn progressed(&self) -> bool {
        self.outcomes.iter().any(Option::is_some)
    }

    fn signal(&self) -> Option<i32> {
        match self.stop {
            Stop::Signal(signal) => Some(signal),
            _ => None,
        }
    }
}

/// How a boot stopped.
#[derive(Debug)]
enum Stop {
    /// The harness said ALLDONE, or Xen stopped.
    Finished,
    /// QEMU's output ended.
    OutputEnded(Option<std::process::ExitStatus>),
    /// A deadline passed.
    TimedOut,
    /// The runner got a signal.
    Signal(i32),
}

/// Boots dom0 once with `ready` (at most `MAX_JOBS`).
fn boot(opts: &BatchOptions, jobs: &[Job], ready: &[Ready], number: usize) -> Result<Boot> {
    let mut images: Vec<(&Path, Vec<u8>)> = Vec::new();
    for r in ready {
        if !images.iter().any(|(path, _)| *path == r.prepared.image) {
            images.push((&r.prepared.image, run::read_image(&r.prepared.image)?));
        }
    }
    // One drive per disk image of the boot; each job's disk line names its dom0 device.
    let (drives, which) = disk::drives(ready.iter().map(|r| r.prepared.disk.as_ref()))?;
    let mut configs = Vec::with_capacity(ready.len());
    for (k, r) in ready.iter().enumerate() {
        let ramdisk = r.prepared.ramdisk.as_ref().map(|_| harness::job_ramdisk(k));
        let disk = match (&r.prepared.disk, which[k]) {
            (Some(d), Some(drive)) => Some(d.xl_line(&disk::dom0_device(drive)?)),
            _ => None,
        };
        let xl = xlcfg::XlConfig {
            kernel: harness::job_image(k),
            ramdisk,
            disk,
            ..r.prepared.xl.clone()
        };
        configs.push(xl.render()?);
    }
    let files: Vec<JobFiles<'_>> = ready
        .iter()
        .zip(&configs)
        .map(|(r, config)| JobFiles {
            config,
            image: &images.iter().find(|(p, _)| *p == r.prepared.image).expect("read above").1,
            ramdisk: r.prepared.ramdisk.as_deref(),
            driver: jobs[r.index].driver.as_deref(),
            timeout: jobs[r.index].timeout,
            forward: None,
        })
        .collect();
    let machine = ready
        .iter()
        .map(|r| &jobs[r.index])
        .fold((2, 1), |(mib, cpus), job| (job.memory_mib.max(mib), job.vcpus.max(cpus)));
    let staging = run::staging_dir()?;
    let cmd = run::domu_command(opts.platform(), &files, machine, &drives, staging.path(), &[])?;
    // The initrd holds them now.
    drop(files);
    drop(images);
    if opts.verbose {
        eprintln!(
            "xen-runner: boot {number}: {} jobs, machine for {} MiB and {} vCPUs",
            ready.len(),
            machine.0,
            machine.1
        );
    }
    let mut session = Session::spawn(cmd, false)?;
    let mut demux = Demux::new(ready.len());
    for (i, r) in ready.iter().enumerate() {
        if jobs[r.index].log.is_some() {
            demux.show_all_logs(i);
        }
    }
    if opts.verbose {
        demux.echo_to(Box::new(io::stderr()));
    }
    let timeouts: Vec<Option<Duration>> = ready.iter().map(|r| jobs[r.index].timeout).collect();
    let mut clock = Clock::new(ready.len());
    let stop = relay(&mut session, &mut demux, &timeouts, &mut clock, opts.verbose)?;
    session.kill();
    let why_not = why_not_run(&stop, &demux);
    let child_stderr = session.stderr_tail().to_vec();
    let outcomes = demux
        .into_jobs()
        .into_iter()
        .enumerate()
        .map(|(k, outcome)| {
            let r = &ready[k];
            let end = job_end(&outcome, &stop)?;
            let took = clock.seconds(k);
            let result = judge(&jobs[r.index], r, outcome, &end, &child_stderr, took, number);
            if opts.verbose {
                eprintln!(
                    "xen-runner: job {} ({}): status {} ({}) after {:.2} s",
                    harness::job_number(k),
                    result.name,
                    result.status,
                    result.why,
                    took.unwrap_or(0.0)
                );
            }
            Some(result)
        })
        .collect();
    Ok(Boot { outcomes, stop, why_not })
}

/// When each job began and ended, as the runner saw it.
struct Clock {
    began: Vec<Option<Instant>>,
    ended: Vec<Option<Instant>>,
}

impl Clock {
    fn new(jobs: usize) -> Self {
        Self { began: vec![None; jobs], ended: vec![None; jobs] }
    }

    fn seconds(&self, job: usize) -> Option<f64> {
        let began = self.began[job]?;
        let ended = self.ended[job].unwrap_or_else(Instant::now);
        Some(ended.duration_since(began).as_secs_f64())
    }
}

/// Relays QEMU's output into the splitter until the boot stops, keeping a
/// deadline: the boot allowance until the first job, then each job's timeout
/// (plus dom0's grace), then the time allowed between jobs.
fn relay(
    session: &mut Session,
    demux: &mut Demux,
    timeouts: &[Option<Duration>],
    clock: &mut Clock,
    verbose: bool,
) -> Result<Stop> {
    let mut deadline = Some(Instant::now() + BOOT_ALLOWANCE);
    let mut stderr = io::stderr();
    loop {
        let shown = if verbose { Some(&mut stderr as &mut dyn Write) } else { None };
        let happenings = match session.next(deadline, shown)? {
            Incoming::Output(chunk) => demux.feed(&chunk)?,
            Incoming::OutputEnded(status) => {
                note(demux.finish()?, timeouts, clock, &mut deadline);
                return Ok(Stop::OutputEnded(status));
            }
            Incoming::TimedOut => return Ok(Stop::TimedOut),
            Incoming::Signal(signal) => return Ok(Stop::Signal(signal)),
        };
        note(happenings, timeouts, clock, &mut deadline);
        if demux.finished().is_some() {
            return Ok(Stop::Finished);
        }
    }
}

/// Moves the clock and the deadline on for what the stream brought.
fn note(
    happenings: Vec<Happening>,
    timeouts: &[Option<Duration>],
    clock: &mut Clock,
    deadline: &mut Option<Instant>,
) {
    let now = Instant::now();
    for happening in happenings {
        match happening {
            Happening::Began(k) => {
                clock.began[k] = Some(now);
                *deadline = timeouts[k].map(|t| now + t + JOB_GRACE);
            }
            Happening::Ended(k) => {
                clock.ended[k] = Some(now);
                *deadline = Some(now + BETWEEN_JOBS);
            }
        }
    }
}

/// Returns what ended a job's run as a single run would have seen it, or
/// `None` when the job never began.
fn job_end(outcome: &JobOutcome, stop: &Stop) -> Option<End> {
    match &outcome.event {
        // dom0 destroyed the guest at its timeout, as the runner does in a single run.
        Some(Event::JobEnded(how)) if how == "timeout" => Some(End::TimedOut),
        Some(event) => Some(End::Event(event.clone())),
        None if !outcome.began => None,
        // The boot stopped while the job ran.
        None => Some(match stop {
            Stop::Finished => End::Event(Event::AllDone),
            Stop::OutputEnded(status) => End::OutputEnded(*status),
            Stop::TimedOut => End::TimedOut,
            Stop::Signal(signal) => End::Signal(*signal),
        }),
    }
}

/// Turns a job's outcome into its result, through the single run's report.
fn judge(
    job: &Job,
    ready: &Ready,
    outcome: JobOutcome,
    end: &End,
    child_stderr: &[String],
    seconds: Option<f64>,
    boot: usize,
) -> JobResult {
    let judge = Judge { image: &ready.prepared.image, timeout: job.timeout, verbose: false };
    let mut report = Vec::new();
    let status = run::report(&judge, end, &outcome.console, child_stderr, &mut report);
    let (stdout, stderr) = outcome.console.into_writers();
    let mut all_stderr = ready.said.clone();
    all_stderr.extend(stderr);
    all_stderr.extend(report);
    let (stdout, stdout_base64) = text_of(stdout);
    let (stderr, stderr_base64) = text_of(all_stderr);
    JobResult {
        name: job.name.clone(),
        status,
        stdout,
        stdout_base64,
        stderr,
        stderr_base64,
        driver_output: String::from_utf8_lossy(&outcome.driver_output).into_owned(),
        driver_status: outcome.driver_status,
        end: outcome.end.unwrap_or_else(|| "unfinished".into()),
        why: run::describe(end),
        domain: ready.prepared.xl.name.clone(),
        seconds,
        boot: Some(boot),
    }
}

/// Says why the jobs of a boot that did not begin did not.
fn why_not_run(stop: &Stop, demux: &Demux) -> String {
    let what = match (stop, demux.finished()) {
        (_, Some(Finish::XenStopped(line))) => format!("Xen stopped ({line})"),
        (_, Some(Finish::AllDone)) => "the harness finished without it".to_owned(),
        (Stop::OutputEnded(Some(status)), _) => format!("QEMU ended ({status})"),
        (Stop::OutputEnded(None), _) => "QEMU's output ended".to_owned(),
        (Stop::TimedOut, _) => "the harness did not begin it in time".to_owned(),
        (Stop::Signal(signal), _) => format!("the runner got signal {signal}"),
        (Stop::Finished, None) => "the boot ended".to_owned(),
    };
    let tail: Vec<&[u8]> = demux.boot_tail().collect();
    let mut why = format!("{what}; the last lines from Xen and dom0:");
    for line in console::lines_to_show(&tail, 30) {
        why.push_str("\n  ");
        why.push_str(&String::from_utf8_lossy(&console::sanitize(line)));
    }
    why
}

/// The result of a job that was ready but never began.
fn not_run(job: &Job, ready: &Ready, why: &str) -> JobResult {
    let mut stderr = ready.said.clone();
    let _ = writeln!(stderr, "xen-runner: the job did not run: {why}");
    let (stderr, stderr_base64) = text_of(stderr);
    JobResult {
        name: job.name.clone(),
        status: status::STATUS_NO_EXIT,
        stdout: String::new(),
        stdout_base64: None,
        stderr,
        stderr_base64,
        driver_output: String::new(),
        driver_status: None,
        end: "not-run".into(),
        why: why.lines().next().unwrap_or_default().to_owned(),
        domain: ready.prepared.xl.name.clone(),
        seconds: None,
        boot: None,
    }
}

fn signal_status(signal: i32) -> u8 {
    if signal == signal_hook::consts::SIGINT {
        status::STATUS_INTERRUPTED
    } else {
        128u8.wrapping_add(signal as u8)
    }
}

fn write_results(to: Option<&Path>, results: &Results) -> Result<()> {
    let mut text = serde_json::to_string_pretty(results)?;
    text.push('\n');
    match to {
        Some(path) => fs::write(path, text).with_context(|| format!("writing {}", path.display())),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())?;
            Ok(out.flush()?)
        }
    }
}

/// Returns bytes as text, and as base64 too when they are not UTF-8.
fn text_of(bytes: Vec<u8>) -> (String, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let bytes = e.into_bytes();
            (String::from_utf8_lossy(&bytes).into_owned(), Some(base64(&bytes)))
        }
    }
}

/// Encodes bytes in base64 with padding (RFC 4648, section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let word =
            group.iter().enumerate().fold(0u32, |w, (i, &b)| w | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::GuestExit;

    #[test]
    fn base64_as_rfc_4648_gives_it() {
        // The test vectors of RFC 4648, section 10.
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn text_keeps_exact_bytes_only_when_needed() {
        assert_eq!(text_of(b"ok\n".to_vec()), ("ok\n".into(), None));
        assert_eq!(text_of(vec![b'a', 0xff]), ("a\u{fffd}".into(), Some("Yf8=".into())));
    }

    fn outcome(feed: &[u8]) -> JobOutcome {
        let mut demux = Demux::new(1);
        demux.feed(feed).unwrap();
        demux.finish().unwrap();
        demux.into_jobs().remove(0)
    }

    #[test]
    fn a_jobs_ending_is_what_a_single_run_would_see() {
        let stop = Stop::Finished;
        let exit = outcome(b"@@XENJOB BEGIN 001\n\x1eX7\n@@XENJOB END 001 timeout\n");
        assert!(matches!(
            job_end(&exit, &stop),
            Some(End::Event(Event::Exit(GuestExit::Status(7))))
        ));
        let timeout = outcome(b"@@XENJOB BEGIN 001\n@@XENJOB END 001 timeout\n");
        assert!(matches!(job_end(&timeout, &stop), Some(End::TimedOut)));
        let crash = outcome(b"@@XENJOB BEGIN 001\n@@XENJOB END 001 crash\n");
        assert!(
            matches!(job_end(&crash, &stop), Some(End::Event(Event::JobEnded(h))) if h == "crash")
        );
        let cut = outcome(b"@@XENJOB BEGIN 001\n\x1eOa\n");
        assert!(matches!(job_end(&cut, &Stop::OutputEnded(None)), Some(End::OutputEnded(None))));
        assert!(matches!(job_end(&cut, &Stop::Signal(2)), Some(End::Signal(2))));
        assert!(job_end(&outcome(b"(XEN) boot\n"), &stop).is_none());
    }

    #[test]
    fn domain_names_are_unique_per_job() {
        let job = |name: &str| Job {
            name: name.into(),
            image: "i".into(),
            args: vec![],
            env: vec![],
            memory_mib: 64,
            vcpus: 1,
            timeout: None,
            driver: None,
            xl_lines: vec![],
            kernel_args: vec![],
            log: None,
            files: None,
            disk: None,
        };
        let pid = std::process::id();
        assert_eq!(domain_name(&job("exit 42"), 0), format!("xr-exit_42-{pid}-1"));
        assert_ne!(domain_name(&job("a"), 0), domain_name(&job("a"), 1));
    }
}
