//! `xen-bench`: the figures of the issues' benchmarks, each with its target and
//! how far it is from it: start-up and size of `examples/hello`, side by side
//! with `ci/minimal-guest` measured in the same run, and std's threads and
//! locks on Xen, side by side with the same program in a Linux domU, and the throughput of
//! a virtual disk and of TCP over a vif (requests per second, bulk throughput, memory), the
//! same way.
//! `./bench` at the repository root builds and runs it; `docs/bench.md` says
//! what is measured and how.

mod disk;
mod dom0;
mod domu;
mod images;
mod net;
mod output;
mod serial;
mod stats;
mod threads;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::Parser;
use xen_runner::cmdline::GuestCommandLine;

use crate::domu::{Job, JobResult};
use crate::images::Image;
use crate::stats::{at_most, ratio_at_most, summarize, Summary};

/// Targets of the issue.
const TARGET_IMAGE_BYTES: f64 = 200_000.0;
const TARGET_MEMORY_MIB: u32 = 2;
const TARGET_CREATE_RATIO: f64 = 1.10;
const TARGET_FLAT_RATIO: f64 = 1.10;

/// Guest memory sizes of the figures, in MiB.
const SMALL_MIB: u32 = 64;
const LARGE_MIB: u32 = 2048;

/// The memory sizes tried first in the search for the least memory (xl takes whole MiB).
const SCAN_FIRST: [u32; 7] = [2, 3, 4, 5, 6, 7, 8];
/// At most this many search jobs per guest go into one further dom0 boot.
const SCAN_BATCH: usize = 12;

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// examples/hello's size, least memory and start-up times, with ci/minimal-guest alongside.
    Startup,
    /// Thread spawn and join, Mutex, Condvar round trip and sleep overshoot, Xen vs Linux domU.
    Threads,
    /// Sequential write and read throughput of a virtual disk, Xen vs Linux domU.
    Disk,
    /// HTTP requests per second, bulk TCP both ways and memory under many connections, Xen vs
    /// Linux domU, driven from dom0.
    Net,
}

/// Measures examples/hello against the targets, with ci/minimal-guest alongside, and
/// std's threads on Xen against the same program in a Linux domU.
#[derive(Debug, Parser)]
#[command(name = "xen-bench", version)]
struct Args {
    /// The parts to run (default: all of them, in this order).
    #[arg(value_enum)]
    parts: Vec<Part>,
    /// The repository (default: the one this tool was built from).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Rounds of dom0 runs (each: hello in 64 MiB, hello in 2 GiB, minimal guest in 64 MiB).
    #[arg(long, default_value_t = 7)]
    dom0_rounds: usize,
    /// Rounds of domU creations for "xl create to first line" (each: hello and minimal guest).
    #[arg(long, default_value_t = 8)]
    domu_rounds: usize,
    /// Rounds of the thread benchmark (each: the Xen guest and the Linux guest, once).
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    thread_rounds: usize,
    /// vCPUs of both guests of the thread benchmark (QEMU gets as many CPUs).
    #[arg(long, default_value_t = 1, value_parser = RangedU64ValueParser::<u32>::new().range(1..))]
    thread_vcpus: u32,
    /// Rounds of the disk benchmark (each: the Xen guest and the Linux guest, once).
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    disk_rounds: usize,
    /// MiB each disk benchmark run writes, then reads.
    #[arg(long, default_value_t = 256, value_parser = RangedU64ValueParser::<u32>::new().range(1..=4096))]
    disk_mib: u32,
    /// Rounds of the network benchmark (each: the Xen guest and the Linux guest, once).
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    net_rounds: usize,
    /// MiB of each bulk TCP transfer of the network benchmark (each way).
    #[arg(long, default_value_t = 64, value_parser = RangedU64ValueParser::<u32>::new().range(0..=4096))]
    net_mib: u32,
    /// Seconds of each HTTP request-rate figure of the network benchmark.
    #[arg(long, default_value_t = 5, value_parser = RangedU64ValueParser::<u32>::new().range(1..=600))]
    net_seconds: u32,
    /// Connections the network benchmark holds open for the memory figure.
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<u32>::new().range(0..=1000))]
    net_conns: u32,
    /// Concurrent keep-alive connections of the second request-rate figure.
    #[arg(long, default_value_t = 16, value_parser = RangedU64ValueParser::<u32>::new().range(1..=1000))]
    net_concurrent: u32,
    /// A kernel option for the network benchmark's Xen guest, such as `xen.profile=1000`
    /// (docs/profile.md); may be given more than once.
    #[arg(long, value_name = "xen.OPTION=VALUE")]
    net_xen_arg: Vec<String>,
    /// Keep the timed console logs of every QEMU run in this directory.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// The cargo that knows `+xen` (rustup's).
    #[arg(long, default_value = "cargo")]
    cargo: String,
    /// A line to print under the report's heading (repeatable; `./bench` uses it).
    #[arg(long)]
    note: Vec<String>,
}

/// What every run needs.
pub struct Bench {
    /// The repository.
    pub repo: PathBuf,
    /// Scratch space (its path holds no comma or space, for QEMU's -initrd).
    pub work: PathBuf,
    /// Where the console logs go.
    pub logs: PathBuf,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The uncompressed hypervisor for dom0 runs.
    pub dom0_xen: PathBuf,
    /// The runner's cache (`~/.cache/xen-rust`).
    pub cache: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the parts asked for and prints their tables; returns false if a figure could not be
/// measured.
fn run(args: &Args) -> Result<bool> {
    let repo = match &args.repo {
        Some(r) => r.canonicalize().with_context(|| format!("no repository at {}", r.display()))?,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?,
    };
    let scratch = tempfile::Builder::new().prefix("xen-bench.").tempdir_in("/tmp")?;
    let work = scratch.path().to_owned();
    let logs = match &args.keep_logs {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.canonicalize()?
        }
        None => work.join("logs"),
    };
    std::fs::create_dir_all(&logs)?;
    let cache = xen_runner::cache::dir()?;
    let dom0_xen = xen_runner::cache::hypervisor(Path::new(xen_runner::run::DEFAULT_XEN), &cache)
        .context("the hypervisor for dom0 runs (xen-hypervisor-4.17-amd64)")?;
    let bench = Bench { repo, work, logs, qemu: args.qemu.clone(), dom0_xen, cache };

    let all = args.parts.is_empty();
    let mut complete = true;
    if all || args.parts.contains(&Part::Startup) {
        complete &= startup(&bench, args)?;
    }
    if all || args.parts.contains(&Part::Threads) {
        if all || args.parts.contains(&Part::Startup) {
            println!();
        }
        let options = threads::Options {
            rounds: args.thread_rounds,
            vcpus: args.thread_vcpus,
            cargo: args.cargo.clone(),
            notes: args.note.clone(),
        };
        let (text, done) = threads::run(&bench, &options)?;
        print!("{text}");
        complete &= done;
    }
    if all || args.parts.contains(&Part::Disk) {
        if all || args.parts.iter().any(|p| *p != Part::Disk) {
            println!();
        }
        let options = disk::Options {
            rounds: args.disk_rounds,
            mib: args.disk_mib,
            cargo: args.cargo.clone(),
            notes: args.note.clone(),
        };
        let (text, done) = disk::run(&bench, &options)?;
        print!("{text}");
        complete &= done;
    }
    if all || args.parts.contains(&Part::Net) {
        if all || args.parts.iter().any(|p| *p != Part::Net) {
            println!();
        }
        let options = net::Options {
            rounds: args.net_rounds,
            mib: args.net_mib,
            seconds: args.net_seconds,
            conns: args.net_conns,
            concurrent: args.net_concurrent,
            xen_args: args.net_xen_arg.clone(),
            cargo: args.cargo.clone(),
            notes: args.note.clone(),
        };
        let (text, done) = net::run(&bench, &options)?;
        print!("{text}");
        complete &= done;
    }
    if args.keep_logs.is_some() {
        eprintln!("bench: console logs kept in {}", bench.logs.display());
    }
    Ok(complete)
}

/// The start-up part: examples/hello against ci/minimal-guest; prints its table and returns
/// false if a figure could not be measured.
fn startup(bench: &Bench, args: &Args) -> Result<bool> {
    let load_before = loadavg();
    let date = now_utc();
    let started = std::time::Instant::now();
    let repo = &bench.repo;
    let hello = images::build_hello(repo, &args.cargo, &bench.work)?;
    let minimal = images::build_minimal(repo, &bench.work)?;
    let guests = [&hello, &minimal];

    // dom0 runs: in-guest hand-over to main, and Xen's last line to first output on the host.
    let plan: Vec<(usize, u32)> = vec![(0, SMALL_MIB), (0, LARGE_MIB), (1, SMALL_MIB)];
    let mut dom0_runs: BTreeMap<(usize, u32), Vec<dom0::Dom0Run>> = BTreeMap::new();
    let total = args.dom0_rounds * plan.len();
    for round in 0..args.dom0_rounds {
        for step in 0..plan.len() {
            // Rotate the order each round so that no case always runs first.
            let (g, mib) = plan[(step + round) % plan.len()];
            let n = round * plan.len() + step + 1;
            let tag = format!("dom0-{:02}-{}-{mib}", n, file_name(&guests[g].built));
            let run = dom0::run(bench, &guests[g].built, &cmdline(guests[g])?, mib, &tag)?;
            eprintln!(
                "bench: dom0 run {n}/{total}: {} in {mib} MiB: {}",
                guests[g].name,
                run.describe()
            );
            dom0_runs.entry((g, mib)).or_default().push(run);
        }
    }

    // The output each guest must give to count as having run: what it wrote as dom0.
    let mut reference: [Option<(Vec<u8>, Vec<u8>)>; 2] = [None, None];
    for (g, slot) in reference.iter_mut().enumerate() {
        *slot = dom0_runs.get(&(g, SMALL_MIB)).and_then(|runs| {
            runs.iter()
                .find(|r| r.out.exit == Some(xen_runner::status::GuestExit::Status(0)))
                .map(|r| (r.out.stdout.clone(), r.out.stderr.clone()))
        });
    }

    // domU jobs: xl create to first line in alternating rounds, then the memory search.
    // The first guests after the toolstack starts come up slower (xl and its libraries are
    // read for the first time): one warm-up job of each guest goes first and is not counted.
    let mut jobs = vec![job(&hello, SMALL_MIB)?, job(&minimal, SMALL_MIB)?];
    let mut timing: Vec<(usize, usize)> = Vec::new(); // (guest, job index)
    for round in 0..args.domu_rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for g in order {
            timing.push((g, jobs.len()));
            jobs.push(job(guests[g], SMALL_MIB)?);
        }
    }
    let mut scan: Vec<(usize, u32, usize)> = Vec::new(); // (guest, MiB, job index)
    for (g, guest) in guests.iter().enumerate() {
        for mib in SCAN_FIRST {
            scan.push((g, mib, jobs.len()));
            jobs.push(job(guest, mib)?);
        }
    }
    let mut domu_results = domu::run_jobs(bench, &jobs, "domu-1")?;

    // Fill in the reference from a domU run if no dom0 run gave one.
    for (g, slot) in reference.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = timing.iter().map(|&(tg, i)| (tg, &domu_results[i])).find_map(|(tg, r)| {
                (tg == g && r.out.exit == Some(xen_runner::status::GuestExit::Status(0)))
                    .then(|| (r.out.stdout.clone(), r.out.stderr.clone()))
            });
        }
    }
    let ran = |g: usize, r: &JobResult| match &reference[g] {
        Some((out, err)) => r.out.is_complete(out, err),
        None => r.out.exit == Some(xen_runner::status::GuestExit::Status(0)),
    };

    // Memory search: every size below the least that worked must have been tried. A guest
    // that ran in none of the sizes (not even in the timing jobs' 64 MiB) is not searched
    // further: it is broken, and its reasons are reported.
    let mut tried: [BTreeMap<u32, (bool, String)>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let record =
        |tried: &mut [BTreeMap<u32, (bool, String)>; 2], g: usize, mib: u32, r: &JobResult| {
            // A size counts as working only if every run in it worked.
            let ok = ran(g, r);
            let entry = tried[g].entry(mib).or_insert_with(|| (ok, r.ending()));
            if entry.0 && !ok {
                *entry = (false, r.ending());
            }
        };
    for &(g, mib, i) in &scan {
        record(&mut tried, g, mib, &domu_results[i]);
    }
    for &(g, i) in &timing {
        record(&mut tried, g, SMALL_MIB, &domu_results[i]);
    }
    for pass in 2..=4 {
        let mut more = Vec::new();
        for (g, sizes) in tried.iter().enumerate() {
            // Between the largest size that failed below the least that worked, and that one
            // (a guest that runs in N MiB is taken to run in more).
            let least = sizes.iter().find(|(_, (ok, _))| *ok).map(|(&m, _)| m);
            let above = sizes.range(..least.unwrap_or(0)).map(|(&m, _)| m + 1).next_back();
            let untried: Vec<u32> = (above.unwrap_or(SCAN_FIRST[0])..least.unwrap_or(0))
                .filter(|m| !sizes.contains_key(m))
                .collect();
            // Spread a batch over the gap, so that the next pass can close it.
            let take = untried.len().min(SCAN_BATCH);
            for k in 0..take {
                more.push((g, untried[k * untried.len() / take]));
            }
        }
        if more.is_empty() {
            break;
        }
        let extra: Vec<Job> =
            more.iter().map(|&(g, mib)| job(guests[g], mib)).collect::<Result<_>>()?;
        let results = domu::run_jobs(bench, &extra, &format!("domu-{pass}"))?;
        for (&(g, mib), r) in more.iter().zip(&results) {
            record(&mut tried, g, mib, r);
        }
        domu_results.extend(results);
    }

    let report = Report {
        hello: &hello,
        minimal: &minimal,
        dom0_runs: &dom0_runs,
        timing: timing.iter().map(|&(g, i)| (g, &domu_results[i])).collect(),
        tried: &tried,
        reference_known: [reference[0].is_some(), reference[1].is_some()],
    };
    let (text, complete) =
        report.render(&date, &load_before, &loadavg(), started.elapsed().as_secs_f64(), args);
    print!("{text}");
    Ok(complete)
}

/// 32 bytes from the host's generator, for a guest's `xen.seed`.
fn random_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("reading /dev/urandom")?;
    Ok(seed)
}

/// The guest command line the runner would give the image (framed console, a fresh seed).
fn cmdline(image: &Image) -> Result<String> {
    let line = GuestCommandLine {
        log: None,
        env: Vec::new(),
        argv: vec![file_name(&image.built).into_bytes()],
        seed: Some(random_seed()?),
        stdin_eof: true,
        kernel_args: Vec::new(),
    };
    Ok(line.encode()?)
}

fn job(image: &Image, memory_mib: u32) -> Result<Job> {
    Ok(Job {
        image: image.built.clone(),
        ramdisk: None,
        label: format!("{}-{memory_mib}", file_name(&image.built)),
        cmdline: cmdline(image)?,
        memory_mib,
        vcpus: 1,
        timeout: domu::JOB_TIMEOUT,
        disk: None,
        ..Job::default()
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `/proc/loadavg`'s three load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Everything measured, ready to print.
struct Report<'a> {
    hello: &'a Image,
    minimal: &'a Image,
    dom0_runs: &'a BTreeMap<(usize, u32), Vec<dom0::Dom0Run>>,
    timing: Vec<(usize, &'a JobResult)>,
    tried: &'a [BTreeMap<u32, (bool, String)>; 2],
    reference_known: [bool; 2],
}

/// One row of the table.
struct Row {
    figure: String,
    hello: String,
    minimal: String,
    target: String,
    distance: String,
}

impl Report<'_> {
    fn dom0_values(
        &self,
        g: usize,
        mib: u32,
        f: impl Fn(&dom0::Dom0Run) -> Option<f64>,
    ) -> Vec<f64> {
        self.dom0_runs
            .get(&(g, mib))
            .map(|runs| runs.iter().filter_map(f).collect())
            .unwrap_or_default()
    }

    /// hello's `f` in `large` MiB over that in `small` MiB, round by round.
    fn dom0_pairs(
        &self,
        small: u32,
        large: u32,
        f: impl Fn(&dom0::Dom0Run) -> Option<f64>,
    ) -> Vec<f64> {
        let (Some(a), Some(b)) = (self.dom0_runs.get(&(0, small)), self.dom0_runs.get(&(0, large)))
        else {
            return Vec::new();
        };
        a.iter()
            .zip(b)
            .filter_map(|(a, b)| Some((f(a)?, f(b)?)))
            .filter(|(a, _)| *a > 0.0)
            .map(|(a, b)| b / a)
            .collect()
    }

    fn least_memory(&self, g: usize) -> Option<u32> {
        self.tried[g].iter().find(|(_, (ok, _))| *ok).map(|(&m, _)| m)
    }

    /// Renders the report; the flag is false if a headline figure could not be measured.
    fn render(
        &self,
        date: &str,
        load_before: &str,
        load_after: &str,
        secs: f64,
        args: &Args,
    ) -> (String, bool) {
        let mut complete = true;
        let mut rows = Vec::new();
        let mut notes = Vec::new();

        // Image size.
        let kb = |b: u64| format!("{:.1} KB", b as f64 / 1000.0);
        rows.push(Row {
            figure: "stripped image size".into(),
            hello: kb(self.hello.stripped_bytes),
            minimal: kb(self.minimal.stripped_bytes),
            target: "<= 200 KB".into(),
            distance: at_most(self.hello.stripped_bytes as f64, TARGET_IMAGE_BYTES),
        });
        notes.push(format!(
            "image size: hello {} bytes stripped ({} as built, {}); minimal guest {} stripped \
             ({} as built). KB = 1000 bytes.",
            self.hello.stripped_bytes,
            self.hello.built_bytes,
            self.hello.built.display(),
            self.minimal.stripped_bytes,
            self.minimal.built_bytes
        ));

        // Least memory.
        let least = [self.least_memory(0), self.least_memory(1)];
        let mib = |m: Option<u32>| m.map_or("n/a".to_owned(), |m| format!("{m} MiB"));
        complete &= least[0].is_some();
        rows.push(Row {
            figure: "least guest memory (xl create)".into(),
            hello: mib(least[0]),
            minimal: mib(least[1]),
            target: format!("<= {TARGET_MEMORY_MIB} MiB"),
            distance: least[0].map_or("not measured".into(), |m| {
                at_most(f64::from(m), f64::from(TARGET_MEMORY_MIB))
            }),
        });
        for (g, name) in [(0, "hello"), (1, "minimal guest")] {
            let mut text = format!("least memory, {name}:");
            // Group the sizes tried, in order, while the outcome stays the same.
            let mut groups: Vec<(Vec<u32>, bool, String)> = Vec::new();
            for (&m, (ok, why)) in &self.tried[g] {
                match groups.last_mut() {
                    Some(last) if last.1 == *ok && last.2 == *why => last.0.push(m),
                    _ => groups.push((vec![m], *ok, why.clone())),
                }
            }
            for (sizes, ok, why) in groups {
                let verdict = if ok { "ran".to_owned() } else { format!("did not run: {why}") };
                let _ = write!(text, "\n      {} MiB: {verdict}", ranges(&sizes));
            }
            if !self.reference_known[g] {
                let _ =
                    write!(text, "\n      (no run gave a reference output: \"ran\" means exit 0)");
            }
            notes.push(text);
        }

        // Hand-over to main, in the guest, as dom0.
        let us = |r: &dom0::Dom0Run| r.out.main_after_us().map(|u| u as f64 / 1000.0);
        let small = summarize(&self.dom0_values(0, SMALL_MIB, us));
        let large = summarize(&self.dom0_values(0, LARGE_MIB, us));
        complete &= small.is_some() && large.is_some();
        let ms = |s: Option<Summary>| s.map_or("n/a".into(), |s| format!("{:.2} ms", s.median));
        rows.push(Row {
            figure: "hand-over to main, 64 MiB (in guest)".into(),
            hello: ms(small),
            minimal: "n/a".into(),
            target: "-".into(),
            distance: "-".into(),
        });
        let flat = ratio_distance(small, large, TARGET_FLAT_RATIO);
        rows.push(Row {
            figure: "hand-over to main, 2 GiB (in guest)".into(),
            hello: ms(large),
            minimal: "n/a".into(),
            target: format!("<= {TARGET_FLAT_RATIO:.2} x 64 MiB"),
            distance: flat,
        });
        notes.push(format!(
            "hand-over to main: the kernel's \"main after N us\" log line (Xen system time from \
             boot's first clock read to the call of main), hello as dom0, ms:\n      64 MiB: {}\n      \
             2 GiB:  {}\n      2 GiB / 64 MiB: ratio of medians {}, of minimums {}, per-round \
             ratios {}\n      The minimal guest reads no clock, so it has no in-guest figure (n/a).",
            detail(small, 2, " ms"),
            detail(large, 2, " ms"),
            ratio(small.map(|s| s.median), large.map(|s| s.median)),
            ratio(small.map(|s| s.min), large.map(|s| s.min)),
            detail(summarize(&self.dom0_pairs(SMALL_MIB, LARGE_MIB, us)), 2, ""),
        ));
        let host = |g, m| {
            summarize(&self.dom0_values(g, m, dom0::Dom0Run::handover_to_first_line)).map(|s| {
                Summary { min: s.min * 1e3, median: s.median * 1e3, max: s.max * 1e3, ..s }
            })
        };
        notes.push(format!(
            "seen from the host, dom0 runs: Xen's last boot line (\"Freed ... init memory\") to the \
             guest's first stdout line, ms (includes the serial path):\n      hello 64 MiB:   {}\n      \
             hello 2 GiB:    {}\n      minimal 64 MiB: {}",
            detail(host(0, SMALL_MIB), 1, " ms"),
            detail(host(0, LARGE_MIB), 1, " ms"),
            detail(host(1, SMALL_MIB), 1, " ms")
        ));

        // xl create to first line.
        let first = |g: usize| {
            summarize(
                &self
                    .timing
                    .iter()
                    .filter(|(tg, _)| *tg == g)
                    .filter_map(|(_, r)| r.to_first_line())
                    .collect::<Vec<_>>(),
            )
        };
        let (fh, fm) = (first(0), first(1));
        complete &= fh.is_some() && fm.is_some();
        let secs_cell =
            |s: Option<Summary>| s.map_or("n/a".into(), |s| format!("{:.3} s", s.median));
        rows.push(Row {
            figure: "xl create to first line (host)".into(),
            hello: secs_cell(fh),
            minimal: secs_cell(fm),
            target: format!("<= {TARGET_CREATE_RATIO:.2} x minimal"),
            distance: ratio_distance(fm, fh, TARGET_CREATE_RATIO),
        });
        let mut pairs = Vec::new();
        let (mut last_h, mut last_m) = (None, None);
        for (g, r) in &self.timing {
            if *g == 0 {
                last_h = r.to_first_line()
            } else {
                last_m = r.to_first_line()
            }
            if let (Some(h), Some(m)) = (last_h, last_m) {
                pairs.push(h / m);
                (last_h, last_m) = (None, None);
            }
        }
        let in_guest: Vec<String> = self
            .timing
            .iter()
            .filter(|(g, _)| *g == 0)
            .filter_map(|(_, r)| r.out.main_after_us())
            .map(|u| u.to_string())
            .collect();
        let failed: Vec<String> = self
            .timing
            .iter()
            .filter(|(_, r)| r.to_first_line().is_none())
            .map(|(g, r)| format!("{}: {}", ["hello", "minimal"][*g], r.ending()))
            .collect();
        notes.push(format!(
            "xl create to first line: host time from \"@@XENJOB BEGIN\" (dom0's init prints it, \
             then runs `xl create -F`) to the program's first stdout line, domUs of {SMALL_MIB} MiB \
             in one dom0 boot after one uncounted warm-up job of each, the two guests alternating \
             (ABBA), s:\n      hello:   {}\n      minimal: {}\n      \
             hello / minimal: ratio of medians {}, of minimums {}, per-round ratios {}{}\n      first record of any kind (hello's kernel log \
             comes first): hello {}, minimal {}\n      in-guest \"main after\" of these hello domUs, us: {}",
            detail(fh, 3, " s"),
            detail(fm, 3, " s"),
            ratio(fm.map(|s| s.median), fh.map(|s| s.median)),
            ratio(fm.map(|s| s.min), fh.map(|s| s.min)),
            detail(summarize(&pairs), 2, ""),
            if failed.is_empty() { String::new() } else { format!("\n      no first line: {}", failed.join("; ")) },
            detail(summarize(&self.timing.iter().filter(|(g, _)| *g == 0).filter_map(|(_, r)| r.to_first_record()).collect::<Vec<_>>()), 3, " s"),
            detail(summarize(&self.timing.iter().filter(|(g, _)| *g == 1).filter_map(|(_, r)| r.to_first_record()).collect::<Vec<_>>()), 3, " s"),
            if in_guest.is_empty() { "none".to_owned() } else { in_guest.join(" ") },
        ));

        let failed: Vec<String> = self
            .dom0_runs
            .iter()
            .flat_map(|(&(g, m), runs)| runs.iter().map(move |r| (g, m, r)))
            .filter(|(_, _, r)| r.out.exit != Some(xen_runner::status::GuestExit::Status(0)))
            .map(|(g, m, r)| format!("{} in {m} MiB: {}", ["hello", "minimal"][g], r.describe()))
            .collect();
        if !failed.is_empty() {
            notes.push(format!("dom0 runs that did not exit 0: {}", failed.join("; ")));
        }

        let mut out = String::new();
        let _ = writeln!(
            out,
            "examples/hello vs ci/minimal-guest on Xen 4.17 in QEMU, {}; {} CPUs, load average {} \
             before, {} after; {} dom0 rounds, {} domU rounds; {:.0} s",
            date,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_before,
            load_after,
            args.dom0_rounds,
            args.domu_rounds,
            secs
        );
        for note in &args.note {
            let _ = writeln!(out, "Note: {note}");
        }
        let _ = writeln!(out);
        let header = Row {
            figure: "figure".into(),
            hello: "hello".into(),
            minimal: "minimal guest".into(),
            target: "target (hello)".into(),
            distance: "distance".into(),
        };
        let all: Vec<&Row> = std::iter::once(&header).chain(&rows).collect();
        let w =
            |f: fn(&Row) -> &String| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
        let (w1, w2, w3, w4) =
            (w(|r| &r.figure), w(|r| &r.hello), w(|r| &r.minimal), w(|r| &r.target));
        for r in all {
            let _ = writeln!(
                out,
                "{:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
                r.figure, r.hello, r.minimal, r.target, r.distance
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Times are medians; ratios are of medians (\"uncertain\" when the minimums disagree). \
             Details, min/median/max, and how each figure was taken:"
        );
        for note in notes {
            let _ = writeln!(out, "  - {note}");
        }
        if !complete {
            let _ = writeln!(out, "\nSome figures could not be measured (n/a above).");
        }
        (out, complete)
    }
}

/// How far the ratio of the medians `value / base` is from "at most `limit`"; when the ratio
/// of the minimums (the runs least disturbed by other load) says otherwise, that too.
fn ratio_distance(base: Option<Summary>, value: Option<Summary>, limit: f64) -> String {
    let (Some(b), Some(v)) = (base, value) else { return "not measured".into() };
    if b.median <= 0.0 || b.min <= 0.0 {
        return "not measured".into();
    }
    let (by_median, mut text) = ratio_at_most(v.median, b.median, limit);
    let by_min = v.min / b.min;
    if (by_median <= limit) != (by_min <= limit) {
        let verdict = if by_min <= limit { "met" } else { "missed" };
        text.push_str(&format!(" (uncertain: by minimums {by_min:.2}, {verdict})"));
    }
    text
}

/// `value / base` with two decimals, or "n/a".
fn ratio(base: Option<f64>, value: Option<f64>) -> String {
    match (base, value) {
        (Some(b), Some(v)) if b > 0.0 => format!("{:.2}", v / b),
        _ => "n/a".into(),
    }
}

/// Sorted whole numbers as compact ranges: `2-5, 8, 64`.
fn ranges(sorted: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut k = 0;
    while k < sorted.len() {
        let mut j = k;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if j == k {
            sorted[k].to_string()
        } else {
            format!("{}-{}", sorted[k], sorted[j])
        });
        k = j + 1;
    }
    parts.join(", ")
}

/// "min / median / max (n=N)" with `digits` decimals.
fn detail(s: Option<Summary>, digits: usize, unit: &str) -> String {
    match s {
        Some(s) => format!(
            "min {:.d$}{unit}, median {:.d$}{unit}, max {:.d$}{unit} (n={})",
            s.min,
            s.median,
            s.max,
            s.n,
            d = digits
        ),
        None => "no data".into(),
    }
}

/// The current time in UTC, as `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details() {
        let s = summarize(&[1.0, 2.0, 4.0]);
        assert_eq!(detail(s, 1, " ms"), "min 1.0 ms, median 2.0 ms, max 4.0 ms (n=3)");
        assert_eq!(detail(None, 1, ""), "no data");
    }

    #[test]
    fn ratio_distances() {
        let s = |min, median| summarize(&[min, median, median + 1.0]);
        assert_eq!(ratio_distance(s(1.0, 2.0), s(1.0, 2.1), 1.1), "ratio 1.05: met, 4.5% under");
        assert_eq!(
            ratio_distance(s(1.0, 2.0), s(1.0, 2.6), 1.1),
            "ratio 1.30: 18% over (uncertain: by minimums 1.00, met)"
        );
        assert_eq!(ratio_distance(None, s(1.0, 2.0), 1.1), "not measured");
    }

    #[test]
    fn compact_ranges() {
        assert_eq!(ranges(&[4, 5, 6, 7, 8, 64]), "4-8, 64");
        assert_eq!(ranges(&[2]), "2");
        assert_eq!(ranges(&[2, 4, 5]), "2, 4-5");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn dates() {
        assert!(now_utc().ends_with(" UTC"));
        assert_eq!(now_utc().len(), "2026-12-03 11:00 UTC".len());
    }
}
