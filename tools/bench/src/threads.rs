//! The thread benchmark: one std program (`tools/bench/guests/threads`) built for
//! x86_64-unknown-xen and, statically, for Linux, where it is the `/init` of a Linux PV domU
//! (the dom0 harness's own Debian kernel). Both guests are created with xl in one dom0 boot,
//! alternating (ABBA), and time their operations inside the guest; the table gives the time per
//! operation of each and Linux's over Xen's against the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use xen_runner::cmdline::GuestCommandLine;
use xen_runner::cpio::CpioWriter;
use xen_runner::harness;
use xen_runner::status::GuestExit;

use crate::domu::{self, Job, JobResult};
use crate::stats::{ratio_at_least, summarize, Summary};
use crate::{loadavg, now_utc, random_seed, Bench};

/// The guest's crate, in the repository.
const CRATE: &str = "tools/bench/guests/threads";

/// The timed operations as the guest names them, the table's names, and the targets: Linux's
/// time per operation over Xen's, at least.
const OPS: [(&str, &str, f64); 3] = [
    ("spawn_join", "thread spawn + join", 3.0),
    ("mutex", "Mutex lock + unlock (uncontended)", 1.0),
    ("condvar_round_trip", "Condvar ping-pong round trip", 3.0),
];

/// Sleep overshoot: Xen's no worse than Linux's, so Linux's over Xen's at least 1.
const TARGET_SLEEP: f64 = 1.0;

/// The iterations of each part, passed to both builds as arguments (the guest's defaults are
/// the same). In the Linux domU under QEMU a spawn and join takes about 9 ms and a round trip
/// about 1 ms (every system call and page-table update goes through Xen), so these keep a Linux
/// job at about 25 s, 13 s of it the kernel's boot.
const ITERATIONS: [(&str, u32); 4] =
    [("spawn", 500), ("mutex", 1_000_000), ("condvar", 5_000), ("sleep", 200)];

/// Memory of both guests, in MiB.
const MEMORY_MIB: u32 = 256;

/// Longest a job may take from xl create to its end, in seconds: a Linux job takes about 25 s
/// (45 s under load), a Xen one about 3 s.
const TIMEOUTS: [f64; 2] = [60.0, 180.0];

/// The Linux guest's kernel command line, before ` -- ` and the program's arguments (which
/// Linux hands to init). `panic=1`: if init died, the kernel's panic reboots the domain,
/// which ends the job, instead of hanging until the job times out.
const LINUX_CMDLINE: &str = "console=hvc0 quiet panic=1";

/// What the thread benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds; each creates the Xen guest and the Linux guest once.
    pub rounds: usize,
    /// vCPUs of both guests.
    pub vcpus: u32,
    /// The cargo that knows `+xen`.
    pub cargo: String,
    /// Lines to print under the heading.
    pub notes: Vec<String>,
}

/// The two builds of the guest and what boots the Linux one.
struct Guests {
    /// The Xen image, as built.
    xen: PathBuf,
    /// Its size in bytes.
    xen_bytes: u64,
    /// The Linux build, stripped: the initramfs's `/init`.
    init_bytes: u64,
    /// The initramfs holding only `/init`.
    initramfs: PathBuf,
    /// The Linux kernel (the dom0 harness's).
    vmlinux: PathBuf,
    /// Its release, from its `Linux version` string.
    linux_release: String,
}

/// Builds both guests, runs the rounds, and returns the report and whether every figure was
/// measured.
pub fn run(bench: &Bench, options: &Options) -> Result<(String, bool)> {
    let load_before = loadavg();
    let date = now_utc();
    let started = std::time::Instant::now();
    let guests = build(bench, &options.cargo)?;

    let args: Vec<String> = ITERATIONS.iter().map(|(name, n)| format!("{name}={n}")).collect();
    let mut jobs = Vec::new();
    let mut order = Vec::new(); // (round, side): side 0 is Xen, 1 Linux
    for round in 0..options.rounds {
        let sides = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in sides {
            order.push((round, side));
            jobs.push(if side == 0 {
                let mut argv = vec![b"threads".to_vec()];
                argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
                let line = GuestCommandLine {
                    log: None,
                    env: Vec::new(),
                    argv,
                    seed: Some(random_seed()?),
                    stdin_eof: true,
                    kernel_args: Vec::new(),
                };
                Job {
                    image: guests.xen.clone(),
                    ramdisk: None,
                    label: "threads-xen".into(),
                    cmdline: line.encode()?,
                    memory_mib: MEMORY_MIB,
                    vcpus: options.vcpus,
                    timeout: TIMEOUTS[0],
                    disk: None,
                    ..Job::default()
                }
            } else {
                Job {
                    image: guests.vmlinux.clone(),
                    ramdisk: Some(guests.initramfs.clone()),
                    label: "threads-linux".into(),
                    cmdline: format!("{LINUX_CMDLINE} -- {}", args.join(" ")),
                    memory_mib: MEMORY_MIB,
                    vcpus: options.vcpus,
                    timeout: TIMEOUTS[1],
                    disk: None,
                    ..Job::default()
                }
            });
        }
    }
    let results = domu::run_jobs(bench, &jobs, "threads")?;

    let mut runs: [Vec<Option<Measured>>; 2] =
        [vec![None; options.rounds], vec![None; options.rounds]];
    let mut failures = Vec::new();
    let mut lengths: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (&(round, side), result) in order.iter().zip(&results) {
        let measured = measure(side, result);
        match measured.failure() {
            None => {
                if let (Some(b), Some(e)) = (result.begin, result.end) {
                    lengths[side].push(e - b);
                }
                runs[side][round] = Some(measured);
            }
            Some(why) => failures.push(format!("{} round {}: {why}", SIDES[side], round + 1)),
        }
    }
    let report = Report { guests: &guests, options, runs, failures, lengths };
    let heading = format!(
        "std threads on x86_64-unknown-xen vs the same program on Linux {} (the dom0 harness's \
         Debian kernel as a PV domU), both created with xl in one dom0 boot of Xen 4.17 in QEMU, \
         {date}; {} CPUs, load average {load_before} before, {} after; {} round{}, {} vCPU{} per \
         guest; {:.0} s",
        guests.linux_release,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        options.rounds,
        if options.rounds == 1 { "" } else { "s" },
        options.vcpus,
        if options.vcpus == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    Ok(report.render(&heading))
}

/// The two guests' names, by side.
const SIDES: [&str; 2] = ["Xen", "Linux domU"];

/// Builds the program for Xen and for Linux, and the Linux guest's initramfs.
fn build(bench: &Bench, cargo: &str) -> Result<Guests> {
    let built = build_both(bench, cargo, CRATE, "threads")?;
    // Only /init: the kernel's own built-in archive has /dev/console, which init's stdout is.
    let mut cpio = CpioWriter::new(Vec::new());
    cpio.file("init", 0o755, &built.init)?;
    let initramfs = bench.work.join("threads-initramfs.cpio");
    std::fs::write(&initramfs, cpio.finish()?)?;
    Ok(Guests {
        xen_bytes: std::fs::metadata(&built.xen)
            .with_context(|| format!("no {}", built.xen.display()))?
            .len(),
        xen: built.xen,
        init_bytes: built.init.len() as u64,
        initramfs,
        vmlinux: built.vmlinux,
        linux_release: built.linux_release,
    })
}

/// A benchmark program built for both sides, and the Linux guest's kernel.
pub(crate) struct Built {
    /// The Xen image, as built.
    pub xen: PathBuf,
    /// The Linux build, static and stripped: an initramfs's `/init`.
    pub init: Vec<u8>,
    /// The Linux kernel (the dom0 harness's).
    pub vmlinux: PathBuf,
    /// Its release, from its `Linux version` string.
    pub linux_release: String,
}

/// Builds the crate `krate` (a path in the repository) whose binary is `name` for
/// x86_64-unknown-xen with `cargo +xen`, and statically for Linux with Debian's cargo, and
/// finds the harness's Linux kernel for the Linux guest.
pub(crate) fn build_both(bench: &Bench, cargo: &str, krate: &str, name: &str) -> Result<Built> {
    let dir = bench.repo.join(krate);
    let target_dir = bench.repo.join("target/bench");

    eprintln!("bench: building {krate} for x86_64-unknown-xen ({cargo} +xen build --release)");
    let mut cmd = Command::new(cargo);
    cmd.args(["+xen", "build", "--release", "--quiet", "--target", "x86_64-unknown-xen"])
        .arg("--target-dir")
        .arg(target_dir.join(format!("{name}-xen")))
        .env_remove("RUSTC")
        .env_remove("RUSTFLAGS");
    cargo_build(cmd, &dir)?;
    let xen = target_dir.join(format!("{name}-xen/x86_64-unknown-xen/release/{name}"));

    // Debian's Rust, the same 1.96.0 as the xen toolchain's; static, so that it can be /init.
    eprintln!("bench: building {krate} for Linux (/usr/bin/cargo, static)");
    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.args(["build", "--release", "--quiet", "--target", "x86_64-unknown-linux-gnu"])
        .arg("--target-dir")
        .arg(target_dir.join(format!("{name}-linux")))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    cargo_build(cmd, &dir)?;
    let linux = target_dir.join(format!("{name}-linux/x86_64-unknown-linux-gnu/release/{name}"));
    let stripped = bench.work.join(format!("{name}-linux-init"));
    crate::images::strip(&linux, &stripped)?;
    let init = std::fs::read(&stripped)?;
    if has_interpreter(&init) {
        bail!("{} is dynamically linked: it cannot be a bare initramfs's /init", linux.display());
    }

    let harness_dir = harness::find_dir(Some(&bench.repo.join("ci/dom0")))?;
    let vmlinux = harness::build(&harness_dir, &bench.cache, false)?.vmlinux;
    let kernel =
        std::fs::read(&vmlinux).with_context(|| format!("reading {}", vmlinux.display()))?;
    let linux_release = linux_release(&kernel).unwrap_or_else(|| "(release unknown)".into());
    Ok(Built { xen, init, vmlinux, linux_release })
}

pub(crate) fn cargo_build(mut cmd: Command, dir: &Path) -> Result<()> {
    let status = cmd
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running cargo in {}", dir.display()))?;
    if !status.success() {
        bail!("building {} failed ({status})", dir.display());
    }
    Ok(())
}

/// Tells whether a 64-bit little-endian ELF file has a `PT_INTERP` program header (needs a
/// dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    let word = |at: u64, len: usize| {
        let at = usize::try_from(at).ok()?;
        let bytes = elf.get(at..at.checked_add(len)?)?;
        Some(bytes.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b)))
    };
    let (Some(phoff), Some(size), Some(count)) = (word(0x20, 8), word(0x36, 2), word(0x38, 2))
    else {
        return false;
    };
    (0..count).any(|i| word(phoff + i * size, 4) == Some(3))
}

/// The release in a kernel's `Linux version 6.1.0-57-amd64 (...)` banner.
fn linux_release(kernel: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let at = kernel.windows(BANNER.len()).position(|w| w == BANNER)? + BANNER.len();
    let rest = &kernel[at..kernel.len().min(at + 64)];
    let end = rest.iter().position(|&b| b == b' ' || b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// What one run of the guest reported (`xbench ...` lines, see the guest's source).
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Nanoseconds per operation, by operation.
    per_op_ns: BTreeMap<String, f64>,
    /// The same in each tenth of the run.
    tenths_ns: BTreeMap<String, Vec<f64>>,
    /// sleep(1 ms): the median and mean overshoot in ns, and every overshoot in µs.
    sleep_median_ns: Option<f64>,
    sleep_mean_ns: Option<f64>,
    sleep_samples_us: Vec<f64>,
    /// Sleeps that returned early (never, by std's contract).
    early_sleeps: usize,
    /// `available_parallelism` in the guest.
    parallelism: Option<u32>,
    /// Whether the guest got to `xbench done`.
    done: bool,
    /// How the job ended, when not as it should.
    trouble: Option<String>,
}

impl Measured {
    /// Why this run does not count, if it does not.
    fn failure(&self) -> Option<String> {
        if let Some(why) = &self.trouble {
            return Some(why.clone());
        }
        let missing: Vec<&str> = OPS
            .iter()
            .map(|(op, _, _)| *op)
            .filter(|op| !self.per_op_ns.contains_key(*op))
            .chain(self.sleep_median_ns.is_none().then_some("sleep_1ms"))
            .collect();
        if !self.done || !missing.is_empty() {
            return Some(format!("incomplete output (missing: {})", missing.join(" ")));
        }
        None
    }
}

/// Reads one job's `xbench` lines: the Xen guest's from its stdout, the Linux guest's from its
/// console (a kernel line may stand before one).
fn measure(side: usize, result: &JobResult) -> Measured {
    let stdout = String::from_utf8_lossy(&result.out.stdout).into_owned();
    let lines: Vec<&str> = if side == 0 {
        stdout.lines().collect()
    } else {
        result.text.iter().map(String::as_str).collect()
    };
    let mut m = Measured::default();
    for line in lines {
        let Some(at) = line.find("xbench ") else { continue };
        let mut words = line[at + "xbench ".len()..].split_whitespace();
        let kind = words.next().unwrap_or_default();
        let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let number = |key: &str| fields.get(key).and_then(|v| v.parse::<f64>().ok());
        let list = |key: &str| -> Vec<f64> {
            fields
                .get(key)
                .map_or(Vec::new(), |v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        };
        match kind {
            "start" => {
                m.parallelism = fields.get("parallelism").and_then(|v| v.parse().ok());
            }
            "done" => m.done = true,
            "early_sleep" => m.early_sleeps += 1,
            "failed" => m.trouble = Some(format!("the guest failed: {}", &line[at..])),
            _ => match kind.strip_prefix("op=") {
                Some("sleep_1ms") => {
                    m.sleep_median_ns = number("median_over_ns");
                    m.sleep_mean_ns = number("mean_over_ns");
                    m.sleep_samples_us = list("samples_us");
                }
                Some(op) => {
                    if let Some(ns) = number("per_op_ns") {
                        m.per_op_ns.insert(op.to_owned(), ns);
                    }
                    m.tenths_ns.insert(op.to_owned(), list("tenths_ns"));
                }
                None => {}
            },
        }
    }
    if m.trouble.is_none() {
        m.trouble = bad_ending(side, result);
    }
    m
}

/// How a run's guest ended, if not as a finished run ends: the Xen guest (side 0) with status
/// 0, the Linux guest (side 1) with a power-off.
pub(crate) fn bad_ending(side: usize, result: &JobResult) -> Option<String> {
    let ended_well = if side == 0 {
        result.out.exit == Some(GuestExit::Status(0))
    } else {
        result.how.as_deref() == Some("poweroff")
    };
    (!ended_well).then(|| result.ending())
}

/// Everything measured, ready to print.
struct Report<'a> {
    guests: &'a Guests,
    options: &'a Options,
    /// By side (Xen, Linux), by round: the runs that counted.
    runs: [Vec<Option<Measured>>; 2],
    /// Runs that did not count, and why.
    failures: Vec<String>,
    /// Host seconds from BEGIN to END of the runs that counted, by side.
    lengths: [Vec<f64>; 2],
}

impl Report<'_> {
    /// The values `f` takes over one side's runs.
    fn values(&self, side: usize, f: impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
        self.runs[side].iter().flatten().filter_map(f).collect()
    }

    /// Linux's value over Xen's, round by round.
    fn round_ratios(&self, f: impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
        round_ratios(&self.runs, f, |x, l| (l, x))
    }

    /// A table row and a note for one figure whose target is Linux / Xen >= `limit`.
    fn figure(
        &self,
        name: &str,
        limit: f64,
        f: impl Fn(&Measured) -> Option<f64> + Copy,
        rows: &mut Vec<[String; 5]>,
        notes: &mut Vec<String>,
    ) -> bool {
        let (xen, linux) = (summarize(&self.values(0, f)), summarize(&self.values(1, f)));
        let cell = |s: Option<Summary>| s.map_or("n/a".into(), |s| time(s.median));
        rows.push([
            name.to_owned(),
            cell(xen),
            cell(linux),
            format!("Linux / Xen >= {limit:.2}"),
            at_least_distance(xen, linux, limit),
        ]);
        notes.push(format!(
            "{name}, time per operation over the runs:\n      Xen:        {}\n      Linux domU: {}\n      \
             Linux / Xen: ratio of medians {}, of minimums {}, per-round ratios {}",
            times(xen),
            times(linux),
            ratio(xen.map(|s| s.median), linux.map(|s| s.median)),
            ratio(xen.map(|s| s.min), linux.map(|s| s.min)),
            ratios(summarize(&self.round_ratios(f))),
        ));
        xen.is_some() && linux.is_some()
    }

    fn render(&self, heading: &str) -> (String, bool) {
        let mut complete = true;
        let mut rows = vec![[
            "figure".to_owned(),
            "Xen".to_owned(),
            "Linux domU".to_owned(),
            "target".to_owned(),
            "distance".to_owned(),
        ]];
        let mut notes = Vec::new();
        for (op, name, limit) in OPS {
            complete &=
                self.figure(name, limit, |m| m.per_op_ns.get(op).copied(), &mut rows, &mut notes);
            // How even each run was: its slowest tenth over its fastest.
            let spread = |side: usize| {
                summarize(&self.values(side, |m| {
                    let t = m.tenths_ns.get(op)?;
                    let (lo, hi) =
                        t.iter().fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
                    (lo > 0.0 && !t.is_empty()).then(|| hi / lo)
                }))
            };
            // The fastest tenth of each run: the stretch least disturbed by other load.
            let fastest = |m: &Measured| {
                m.tenths_ns.get(op)?.iter().copied().filter(|x| *x > 0.0).min_by(f64::total_cmp)
            };
            let (fx, fl) =
                (summarize(&self.values(0, fastest)), summarize(&self.values(1, fastest)));
            let _ = write!(
                notes.last_mut().expect("figure adds a note"),
                "\n      fastest tenth of each run (the least disturbed stretch): Xen {}; Linux \
                 domU {}; Linux / Xen of the medians {}\n      inside each run, slowest tenth / \
                 fastest tenth: Xen {}, Linux domU {}",
                times(fx),
                times(fl),
                ratio(fx.map(|s| s.median), fl.map(|s| s.median)),
                ratios(spread(0)),
                ratios(spread(1))
            );
        }
        complete &= self.figure(
            "sleep(1 ms) overshoot, median",
            TARGET_SLEEP,
            |m| m.sleep_median_ns,
            &mut rows,
            &mut notes,
        );
        complete &= self.figure(
            "sleep(1 ms) overshoot, mean",
            TARGET_SLEEP,
            |m| m.sleep_mean_ns,
            &mut rows,
            &mut notes,
        );
        for (side, runs) in self.runs.iter().enumerate() {
            let all: Vec<f64> =
                runs.iter().flatten().flat_map(|m| m.sleep_samples_us.clone()).collect();
            let mut sorted = all.clone();
            sorted.sort_by(f64::total_cmp);
            let over = |ms: f64| sorted.iter().filter(|&&x| x > ms * 1000.0).count();
            let early: usize = runs.iter().flatten().map(|m| m.early_sleeps).sum();
            notes.push(format!(
                "sleep(1 ms) overshoot, {}, all {} sleeps of the runs pooled, us: p50 {}, p90 {}, \
                 p99 {}, max {}; over 1 ms: {}, over 5 ms: {}{}",
                SIDES[side],
                sorted.len(),
                pct(&sorted, 0.50),
                pct(&sorted, 0.90),
                pct(&sorted, 0.99),
                sorted.last().map_or("n/a".into(), |x| format!("{x:.0}")),
                over(1.0),
                over(5.0),
                if early > 0 { format!("; EARLY (a clock bug): {early}") } else { String::new() },
            ));
        }
        let parallelism = |side: usize| {
            let p: Vec<String> = self.runs[side]
                .iter()
                .flatten()
                .filter_map(|m| m.parallelism)
                .map(|p| p.to_string())
                .collect();
            p.first().cloned().unwrap_or_else(|| "?".into())
        };
        let args: Vec<String> = ITERATIONS.iter().map(|(n, i)| format!("{n}={i}")).collect();
        notes.push(format!(
            "setup: one program ({CRATE}), timed in the guest with Instant over {}, after an \
             uncounted tenth of each; rounds alternate ABBA in one dom0 boot. Xen: {} bytes as \
             built, {MEMORY_MIB} MiB, {} vCPU. Linux: {} (Debian's, as PV domU), {MEMORY_MIB} \
             MiB, {} vCPU, extra \"{LINUX_CMDLINE} -- ...\", initramfs holding only /init (the \
             static glibc build, {} bytes stripped). available_parallelism in the guests: Xen \
             {}, Linux {}.",
            args.join(" "),
            self.guests.xen_bytes,
            self.options.vcpus,
            self.guests.linux_release,
            self.options.vcpus,
            self.guests.init_bytes,
            parallelism(0),
            parallelism(1),
        ));
        let length = |side: usize| summarize(&self.lengths[side]);
        notes.push(format!(
            "job length on the host, xl create to the domain's end, s: Xen {}; Linux domU {} \
             (its kernel's boot included)",
            seconds(length(0)),
            seconds(length(1))
        ));
        let out = report(
            heading,
            &self.options.notes,
            &rows,
            "Times per operation are medians over the runs; ratios are Linux's over Xen's, of the \
             medians (\"uncertain\" when the minimums disagree). Details:",
            notes,
            &self.failures,
            complete,
        );
        (out, complete)
    }
}

/// Rows of cells as columns two spaces apart, the last one unpadded.
pub(crate) fn table(rows: &[[String; 5]]) -> String {
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..4).map(width).collect();
    let mut out = String::new();
    for r in rows {
        for (cell, w) in r.iter().zip(&widths) {
            let _ = write!(out, "{cell:w$}  ");
        }
        let _ = writeln!(out, "{}", r[4]);
    }
    out
}

/// The ratio of each round whose two guests both gave the figure `f`: `order` says which of
/// (Xen's, Linux's) is the numerator; a zero denominator drops the round.
pub(crate) fn round_ratios<M>(
    runs: &[Vec<Option<M>>; 2],
    f: impl Fn(&M) -> Option<f64>,
    order: fn(f64, f64) -> (f64, f64),
) -> Vec<f64> {
    runs[0]
        .iter()
        .zip(&runs[1])
        .filter_map(|(x, l)| Some(order(f(x.as_ref()?)?, f(l.as_ref()?)?)))
        .filter(|(_, d)| *d > 0.0)
        .map(|(n, d)| n / d)
        .collect()
}

/// A part's report: its heading, the user's notes, the table, the line that says how to read
/// it, the details (and the runs that did not count), and a last line if some figure is
/// missing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    heading: &str,
    user_notes: &[String],
    rows: &[[String; 5]],
    how_to_read: &str,
    details: Vec<String>,
    failures: &[String],
    complete: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{heading}");
    for note in user_notes {
        let _ = writeln!(out, "Note: {note}");
    }
    let _ = writeln!(out);
    out.push_str(&table(rows));
    let _ = writeln!(out);
    let _ = writeln!(out, "{how_to_read}");
    for note in &details {
        let _ = writeln!(out, "  - {note}");
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "  - runs that did not count: {}", failures.join("; "));
    }
    if !complete {
        let _ = writeln!(out, "\nSome figures could not be measured (n/a above).");
    }
    out
}

/// How far Linux's median over Xen's is from "at least `limit`"; when the ratio of the
/// minimums (the runs least disturbed by other load) says otherwise, that too.
fn at_least_distance(xen: Option<Summary>, linux: Option<Summary>, limit: f64) -> String {
    let (Some(x), Some(l)) = (xen, linux) else { return "not measured".into() };
    if x.median <= 0.0 || x.min <= 0.0 {
        return "not measured (Xen's time is 0)".into();
    }
    let (by_median, mut text) = ratio_at_least(l.median, x.median, limit);
    let by_min = l.min / x.min;
    if (by_median >= limit) != (by_min >= limit) {
        let verdict = if by_min >= limit { "met" } else { "missed" };
        let _ = write!(text, " (uncertain: by minimums {by_min:.2}, {verdict})");
    }
    text
}

/// A time in nanoseconds, in a unit that suits it.
fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn times(s: Option<Summary>) -> String {
    s.map_or("no data".into(), |s| {
        format!("min {}, median {}, max {} (n={})", time(s.min), time(s.median), time(s.max), s.n)
    })
}

pub(crate) fn seconds(s: Option<Summary>) -> String {
    s.map_or("no data".into(), |s| {
        format!("min {:.1}, median {:.1}, max {:.1} (n={})", s.min, s.median, s.max, s.n)
    })
}

pub(crate) fn ratios(s: Option<Summary>) -> String {
    s.map_or("no data".into(), |s| {
        format!("min {:.2}, median {:.2}, max {:.2} (n={})", s.min, s.median, s.max, s.n)
    })
}

/// `value / base` with two decimals, or "n/a".
fn ratio(base: Option<f64>, value: Option<f64>) -> String {
    match (base, value) {
        (Some(b), Some(v)) if b > 0.0 => format!("{:.2}", v / b),
        _ => "n/a".into(),
    }
}

/// The nearest-rank percentile `p` (0 to 1) of sorted values, whole.
fn pct(sorted: &[f64], p: f64) -> String {
    if sorted.is_empty() {
        return "n/a".into();
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    format!("{:.0}", sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ratios_skip_missing_figures_and_zero_denominators() {
        let runs = [vec![Some(2.0), None, Some(3.0), Some(0.0)], vec![Some(4.0), Some(1.0), Some(0.0), Some(5.0)]];
        let figure = |v: &f64| Some(*v);
        assert_eq!(round_ratios(&runs, figure, |x, l| (x, l)), vec![0.5, 0.0]);
        assert_eq!(round_ratios(&runs, figure, |x, l| (l, x)), vec![2.0, 0.0]);
    }

    #[test]
    fn reads_the_guest_lines() {
        let result = JobResult {
            how: Some("poweroff".into()),
            text: [
                "xbench start os=linux parallelism=1 spawn=2000",
                "xbench op=spawn_join n=2000 total_ns=1 per_op_ns=2500.5 tenths_ns=1.0,2.0",
                "[    3.1] some kernel line xbench op=mutex n=10 total_ns=1 per_op_ns=20.0 tenths_ns=",
                "xbench op=condvar_round_trip n=10 total_ns=1 per_op_ns=9000.0 tenths_ns=1",
                "xbench op=sleep_1ms n=3 median_over_ns=60000 mean_over_ns=61000 min_over_ns=1 \
                 max_over_ns=2 samples_us=59,60,64",
                "xbench done",
            ]
            .map(String::from)
            .into(),
            ..Default::default()
        };
        let m = measure(1, &result);
        assert_eq!(m.failure(), None);
        assert_eq!(m.per_op_ns["spawn_join"], 2500.5);
        assert_eq!(m.per_op_ns["mutex"], 20.0);
        assert_eq!(m.tenths_ns["spawn_join"], [1.0, 2.0]);
        assert_eq!(m.sleep_median_ns, Some(60000.0));
        assert_eq!(m.sleep_samples_us, [59.0, 60.0, 64.0]);
        assert_eq!(m.parallelism, Some(1));

        let cut = JobResult { text: result.text[..3].to_vec(), ..result.clone() };
        assert_eq!(
            measure(1, &cut).failure().unwrap(),
            "incomplete output (missing: condvar_round_trip sleep_1ms)"
        );
        let crashed = JobResult { how: Some("reboot".into()), ..result.clone() };
        assert!(measure(1, &crashed).failure().unwrap().contains("reboot"));

        // The Xen guest's lines come from its stdout records, and it must have exited 0.
        let mut xen = JobResult { how: Some("poweroff".into()), ..Default::default() };
        xen.out.stdout = result.text.join("\n").into_bytes();
        assert_eq!(measure(0, &xen).failure().unwrap(), "no output (poweroff)");
        xen.out.exit = Some(GuestExit::Status(0));
        assert_eq!(measure(0, &xen).failure(), None);
        assert_eq!(measure(0, &xen).per_op_ns["condvar_round_trip"], 9000.0);
    }

    #[test]
    fn distances_and_units() {
        let s = |min, median| summarize(&[min, median, median + 1.0]);
        assert_eq!(at_least_distance(s(1.0, 2.0), s(7.0, 8.0), 3.0), "ratio 4.00: met, 33% above");
        assert_eq!(
            at_least_distance(s(1.0, 2.0), s(3.5, 5.0), 3.0),
            "ratio 2.50: 17% below (uncertain: by minimums 3.50, met)"
        );
        assert_eq!(at_least_distance(None, s(1.0, 2.0), 3.0), "not measured");
        assert_eq!(time(34.44), "34.4 ns");
        assert_eq!(time(254_685.8), "254.7 us");
        assert_eq!(time(12_306_244.0), "12.31 ms");
        assert_eq!(pct(&[1.0, 2.0, 3.0, 4.0], 0.5), "2");
        assert_eq!(pct(&[1.0, 2.0, 3.0, 4.0], 0.99), "4");
    }

    #[test]
    fn elf_interpreter_and_kernel_release() {
        let mut elf = vec![0u8; 0x40 + 2 * 56];
        elf[0x20] = 0x40; // e_phoff
        elf[0x36] = 56; // e_phentsize
        elf[0x38] = 2; // e_phnum
        elf[0x40] = 1; // PT_LOAD
        assert!(!has_interpreter(&elf));
        elf[0x40 + 56] = 3; // PT_INTERP
        assert!(has_interpreter(&elf));
        assert!(!has_interpreter(b"short"));
        assert_eq!(
            linux_release(b"\0\0Linux version 6.1.0-57-amd64 (debian-kernel@...) #1"),
            Some("6.1.0-57-amd64".into())
        );
        assert_eq!(linux_release(b"no banner"), None);
    }
}
