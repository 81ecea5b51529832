//! The disk benchmark: one std program (`tools/bench/guests/disk`) writes and then reads back
//! the first MiBs of a virtual disk, sequentially, in 1 MiB pieces; built for
//! x86_64-unknown-xen it uses `std::os::xen::blk::Disk` (the kernel's blkfront), built
//! statically for Linux it is the `/init` of a Linux PV domU and uses `/dev/xvda` with
//! `O_DIRECT` (Linux's blkfront, no page cache). Both get the same image, a drive of QEMU's
//! machine that dom0 hands to blkback, in one dom0 boot, alternating (ABBA); the table gives
//! each one's throughput and Xen's over Linux's against the target.
//!
//! Then the same at the file level: each round also boots both guests on a second image that
//! holds a FAT volume (`mkfs.fat` here), where the program writes one file of [`FILE_MIB`] MiB
//! through `std::fs`, `sync_all`s it and reads it back: Xen with the kernel's FAT volume
//! (`xen.mount=xvda:/mnt`), Linux with its `vfat` (modules from the same kernel package), the
//! page cache dropped before the read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use xen_runner::cmdline::GuestCommandLine;
use xen_runner::cpio::CpioWriter;
use xen_runner::disk::Disk;

use crate::domu::{self, Job, JobResult};
use crate::stats::{ratio_at_least, summarize, Summary};
use crate::threads::{build_both, ratios, report, round_ratios, seconds};
use crate::{loadavg, now_utc, random_seed, Bench};

/// The guest's crate, in the repository.
const CRATE: &str = "tools/bench/guests/disk";

/// The passes as the guest names them, the table's names; the target is Xen's throughput
/// over Linux's, at least.
const OPS: [(&str, &str); 4] = [
    ("write", "sequential write"),
    ("read", "sequential read"),
    ("fwrite", "file write (FAT)"),
    ("fread", "file read (FAT)"),
];

/// The size of the file of the file-level passes, in MiB: fixed, so that its volume (twice
/// that and 32 MiB) stays FAT16 with 4 KiB clusters and runs compare with earlier ones.
const FILE_MIB: u32 = 64;

/// Linux's modules for a FAT volume, loaded in this order by the guest's `/init`.
const FAT_MODULES: [(&str, &str); 4] = [
    ("fat", "fs/fat/fat.ko"),
    ("vfat", "fs/fat/vfat.ko"),
    ("nls_cp437", "fs/nls/nls_cp437.ko"),
    ("nls_ascii", "fs/nls/nls_ascii.ko"),
];
const TARGET: f64 = 0.9;

/// The size of each read and write, in KiB.
const CHUNK_KIB: u32 = 1024;

/// Memory of both guests, in MiB.
const MEMORY_MIB: u32 = 256;

/// The Linux guest's kernel command line before ` -- ` (see threads.rs).
const LINUX_CMDLINE: &str = "console=hvc0 quiet panic=1";

/// What the disk benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds; each creates the Xen guest and the Linux guest once.
    pub rounds: usize,
    /// MiB each pass writes and reads.
    pub mib: u32,
    /// The cargo that knows `+xen`.
    pub cargo: String,
    /// Lines to print under the heading.
    pub notes: Vec<String>,
}

/// The two builds and what boots the Linux one.
struct Guests {
    xen: PathBuf,
    initramfs: PathBuf,
    vmlinux: PathBuf,
    linux_release: String,
}

/// Builds both guests and the image, runs the rounds, and returns the report and whether
/// every figure was measured.
pub fn run(bench: &Bench, options: &Options) -> Result<(String, bool)> {
    let load_before = loadavg();
    let date = now_utc();
    let started = std::time::Instant::now();
    let guests = build(bench, &options.cargo)?;
    // A sparse image a little larger than what is written; both guests get the same one.
    let image = bench.work.join("disk-bench.img");
    let file = std::fs::File::create(&image)?;
    file.set_len((u64::from(options.mib) + 16) << 20)?;
    drop(file);
    let disk = Disk { path: image.clone(), read_only: false, sector_size: 512 }.checked()?;
    let fat_image = fat_image(bench)?;
    let fat_disk = Disk { path: fat_image.clone(), read_only: false, sector_size: 512 }.checked()?;

    let raw_args = vec![format!("mib={}", options.mib), format!("chunk_kib={CHUNK_KIB}")];
    let file_args =
        vec![format!("mib={FILE_MIB}"), format!("chunk_kib={CHUNK_KIB}"), "file=/mnt/bench.bin".to_owned()];
    // Under load a Linux job took about 40 s (13 s of it its boot) and a Xen one 15 s at
    // 256 MiB; allow for a slower disk.
    let timeout = 120.0 + f64::from(options.mib);
    let mut jobs = Vec::new();
    let mut order = Vec::new(); // (round, side): side 0 is Xen, 1 Linux
    for round in 0..options.rounds {
        let sides = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for (args, disk, file) in [(&raw_args, &disk, false), (&file_args, &fat_disk, true)] {
        for side in sides {
            order.push((round, side));
            jobs.push(if side == 0 {
                let mut argv = vec![b"disk".to_vec()];
                argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
                let kernel_args = if file { vec![b"xen.mount=xvda:/mnt".to_vec()] } else { Vec::new() };
                let line = GuestCommandLine {
                    argv,
                    seed: Some(random_seed()?),
                    stdin_eof: true,
                    kernel_args,
                    ..GuestCommandLine::default()
                };
                Job {
                    image: guests.xen.clone(),
                    ramdisk: None,
                    label: "disk-xen".into(),
                    cmdline: line.encode()?,
                    memory_mib: MEMORY_MIB,
                    vcpus: 1,
                    timeout,
                    disk: Some(disk.clone()),
                    ..Job::default()
                }
            } else {
                Job {
                    image: guests.vmlinux.clone(),
                    ramdisk: Some(guests.initramfs.clone()),
                    label: "disk-linux".into(),
                    cmdline: format!("{LINUX_CMDLINE} -- {}", args.join(" ")),
                    memory_mib: MEMORY_MIB,
                    vcpus: 1,
                    timeout,
                    disk: Some(disk.clone()),
                    ..Job::default()
                }
            });
        }
        }
    }
    let results = domu::run_jobs(bench, &jobs, "disk")?;
    let _ = std::fs::remove_file(&image);
    let _ = std::fs::remove_file(&fat_image);

    let mut runs: [Vec<Option<Measured>>; 2] =
        [vec![None; options.rounds], vec![None; options.rounds]];
    let mut failures = Vec::new();
    let mut lengths: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    // Each round and side has two runs, the raw disk's and the file's: one `Measured` of both.
    let mut merged: [Vec<Measured>; 2] =
        [vec![Measured::default(); options.rounds], vec![Measured::default(); options.rounds]];
    for (&(round, side), result) in order.iter().zip(&results) {
        let measured = measure(side, result);
        if let (Some(b), Some(e)) = (result.begin, result.end) {
            if measured.trouble.is_none() {
                lengths[side].push(e - b);
            }
        }
        merged[side][round].merge(measured);
    }
    for side in 0..2 {
        for (round, measured) in merged[side].drain(..).enumerate() {
            match measured.failure() {
                None => runs[side][round] = Some(measured),
                Some(why) => failures.push(format!("{} round {}: {why}", SIDES[side], round + 1)),
            }
        }
    }
    let heading = format!(
        "virtual disk throughput on x86_64-unknown-xen vs the same program on Linux {} (the dom0 \
         harness's Debian kernel as a PV domU), one raw image as a virtio drive of QEMU's \
         machine handed to blkback, both created with xl in one dom0 boot of Xen 4.17 in QEMU, \
         {date}; {} CPUs, load average {load_before} before, {} after; {} round{}, {} MiB each \
         way in {CHUNK_KIB} KiB pieces; {:.0} s",
        guests.linux_release,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        options.rounds,
        if options.rounds == 1 { "" } else { "s" },
        options.mib,
        started.elapsed().as_secs_f64()
    );
    let report = Report { options, runs, failures, lengths };
    Ok(report.render(&heading))
}

/// The two guests' names, by side.
const SIDES: [&str; 2] = ["Xen", "Linux domU"];

/// Builds the program for Xen and for Linux, and the Linux guest's initramfs: the static
/// program as `/init` and Debian's `xen-blkfront.ko`, which it loads.
fn build(bench: &Bench, cargo: &str) -> Result<Guests> {
    let built = build_both(bench, cargo, CRATE, "disk")?;
    let module = kernel_module(bench, &built.linux_release, "drivers/block/xen-blkfront.ko")?;
    let mut cpio = CpioWriter::new(Vec::new());
    cpio.file("init", 0o755, &built.init)?;
    cpio.file("xen-blkfront.ko", 0o644, &module)?;
    for (name, path) in FAT_MODULES {
        cpio.file(&format!("{name}.ko"), 0o644, &kernel_module(bench, &built.linux_release, path)?)?;
    }
    let initramfs = bench.work.join("disk-initramfs.cpio");
    std::fs::write(&initramfs, cpio.finish()?)?;
    Ok(Guests {
        xen: built.xen,
        initramfs,
        vmlinux: built.vmlinux,
        linux_release: built.linux_release,
    })
}

/// A sparse image of twice the file's size and 32 MiB, with a FAT volume of 4 KiB clusters
/// (`mkfs.fat -s 8`, FAT16 at this size).
fn fat_image(bench: &Bench) -> Result<PathBuf> {
    let image = bench.work.join("disk-bench-fat.img");
    let _ = std::fs::remove_file(&image);
    std::fs::File::create(&image)?.set_len((u64::from(FILE_MIB) * 2 + 32) << 20)?;
    let out = Command::new("mkfs.fat")
        .args(["-s", "8", "-n", "XBENCH"])
        .arg(&image)
        .output()
        .context("running mkfs.fat (dosfstools)")?;
    if !out.status.success() {
        bail!("mkfs.fat failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(image)
}

/// The module `path` (under `kernel/`, e.g. `drivers/block/xen-blkfront.ko`) of the kernel
/// `release`, from the kernel package the dom0 harness downloaded (`CACHE/dom0/debs`).
pub(crate) fn kernel_module(bench: &Bench, release: &str, path: &str) -> Result<Vec<u8>> {
    let debs = bench.cache.join("dom0/debs");
    let deb = std::fs::read_dir(&debs)
        .with_context(|| format!("reading {}", debs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("linux-image-{release}_")) && n.ends_with(".deb")
            })
        })
        .with_context(|| format!("no linux-image-{release} package in {}", debs.display()))?;
    let member = format!("./lib/modules/{release}/kernel/{path}");
    let out = Command::new("sh")
        .arg("-c")
        .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xO \"$2\"")
        .arg("sh")
        .arg(&deb)
        .arg(&member)
        .output()
        .context("running dpkg-deb and tar")?;
    if !out.status.success() || out.stdout.len() < 4 || &out.stdout[..4] != b"\x7fELF" {
        bail!("cannot take {member} out of {}: {}", deb.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// What one run of the guest reported.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Bytes per second, by pass.
    rate: BTreeMap<String, f64>,
    /// The same in each tenth of the pass.
    tenths: BTreeMap<String, Vec<f64>>,
    /// The disk's logical sector size as the guest saw it.
    sector_size: Option<u64>,
    done: bool,
    trouble: Option<String>,
}

impl Measured {
    /// Adds another run's figures (the file passes to the raw disk's).
    fn merge(&mut self, other: Measured) {
        let first = self.rate.is_empty() && !self.done && self.trouble.is_none();
        self.done = (first || self.done) && other.done;
        self.rate.extend(other.rate);
        self.tenths.extend(other.tenths);
        self.sector_size = self.sector_size.or(other.sector_size.filter(|&s| s > 0));
        self.trouble = self.trouble.take().or(other.trouble);
    }

    fn failure(&self) -> Option<String> {
        if let Some(why) = &self.trouble {
            return Some(why.clone());
        }
        let missing: Vec<&str> =
            OPS.iter().map(|(op, _)| *op).filter(|op| !self.rate.contains_key(*op)).collect();
        if !self.done || !missing.is_empty() {
            return Some(format!("incomplete output (missing: {})", missing.join(" ")));
        }
        None
    }
}

/// Reads one job's `xbench` lines: the Xen guest's from its stdout, the Linux guest's from
/// its console.
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
        match kind {
            "start" => m.sector_size = fields.get("sector_size").and_then(|v| v.parse().ok()),
            "done" => m.done = true,
            "failed" => m.trouble = Some(format!("the guest failed: {}", &line[at..])),
            _ => {
                if let (Some(op), Some(bytes), Some(ns)) =
                    (kind.strip_prefix("op="), number("bytes"), number("ns"))
                {
                    if ns > 0.0 {
                        m.rate.insert(op.to_owned(), bytes / (ns / 1e9));
                        let tenths: Vec<f64> = fields.get("tenths_ns").map_or(Vec::new(), |v| {
                            v.split(',')
                                .filter_map(|x| x.parse::<f64>().ok())
                                .filter(|&t| t > 0.0)
                                .map(|t| bytes / 10.0 / (t / 1e9))
                                .collect()
                        });
                        m.tenths.insert(op.to_owned(), tenths);
                    }
                }
            }
        }
    }
    if m.trouble.is_none() {
        m.trouble = crate::threads::bad_ending(side, result);
    }
    m
}

struct Report<'a> {
    options: &'a Options,
    runs: [Vec<Option<Measured>>; 2],
    failures: Vec<String>,
    lengths: [Vec<f64>; 2],
}

impl Report<'_> {
    fn values(&self, side: usize, f: impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
        self.runs[side].iter().flatten().filter_map(f).collect()
    }

    /// Xen's value over Linux's, round by round.
    fn round_ratios(&self, f: impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
        round_ratios(&self.runs, f, |x, l| (x, l))
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
        for (op, name) in OPS {
            let f = |m: &Measured| m.rate.get(op).copied();
            let (xen, linux) = (summarize(&self.values(0, f)), summarize(&self.values(1, f)));
            complete &= xen.is_some() && linux.is_some();
            let cell = |s: Option<Summary>| s.map_or("n/a".into(), |s| rate(s.median));
            let distance = match (xen, linux) {
                (Some(x), Some(l)) if l.median > 0.0 => ratio_at_least(x.median, l.median, TARGET).1,
                _ => "not measured".into(),
            };
            rows.push([
                name.to_owned(),
                cell(xen),
                cell(linux),
                format!("Xen / Linux >= {TARGET:.2}"),
                distance,
            ]);
            let fastest = |m: &Measured| m.tenths.get(op)?.iter().copied().max_by(f64::total_cmp);
            notes.push(format!(
                "{name}, throughput over the runs:\n      Xen:        {}\n      Linux domU: {}\n      \
                 Xen / Linux: per-round ratios {}\n      fastest tenth of each run: Xen {}, \
                 Linux domU {}",
                rates(xen),
                rates(linux),
                ratios(summarize(&self.round_ratios(f))),
                rates(summarize(&self.values(0, fastest))),
                rates(summarize(&self.values(1, fastest))),
            ));
        }
        let sector = |side: usize| {
            self.runs[side].iter().flatten().find_map(|m| m.sector_size).map_or("?".into(), |s| s.to_string())
        };
        notes.push(format!(
            "setup: one program ({CRATE}); each run writes {} MiB from the disk's start in \
             {CHUNK_KIB} KiB pieces and makes them durable (Xen: Disk::sync, a cache flush; \
             Linux: fsync), then reads them back and checks every byte; timed in the guest with \
             Instant. Xen: std::os::xen::blk::Disk. Linux: /dev/xvda with O_DIRECT, its \
             xen-blkfront loaded by /init. The file rows: a second image with a FAT16 volume \
             (mkfs.fat -s 8, 4 KiB clusters); each run writes one {FILE_MIB} MiB file through \
             std::fs in {CHUNK_KIB} KiB pieces, sync_all, opens it again and reads it back; Xen: \
             the kernel's FAT volume (xen.mount=xvda:/mnt, hadris-fat), Linux: vfat with the \
             page cache dropped before the read. {MEMORY_MIB} MiB and 1 vCPU each; sector size seen: \
             Xen {}, Linux {}. QEMU's drive: raw file, virtio-blk, QEMU's default cache \
             (writeback) on the host.",
            self.options.mib,
            sector(0),
            sector(1),
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
            "Throughputs are medians over the runs (MB = 10^6 bytes); ratios are Xen's over \
             Linux's, of the medians. Details:",
            notes,
            &self.failures,
            complete,
        );
        (out, complete)
    }
}

/// Bytes per second as MB/s.
fn rate(bytes_per_s: f64) -> String {
    format!("{:.1} MB/s", bytes_per_s / 1e6)
}

fn rates(s: Option<Summary>) -> String {
    s.map_or("no data".into(), |s| {
        format!("min {}, median {}, max {} (n={})", rate(s.min), rate(s.median), rate(s.max), s.n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_runner::status::GuestExit;

    #[test]
    fn reads_the_guest_lines() {
        let result = JobResult {
            how: Some("poweroff".into()),
            text: [
                "xbench start sector_size=512 bytes=285212672",
                "[    9.1] xbench op=write bytes=100000000 ns=2000000000 tenths_ns=100000000,400000000",
                "xbench op=read bytes=100000000 ns=1000000000 tenths_ns=",
                "xbench done",
            ]
            .map(String::from)
            .into(),
            ..Default::default()
        };
        let m = measure(1, &result);
        assert_eq!(m.failure().unwrap(), "incomplete output (missing: fwrite fread)");
        let file = JobResult {
            text: ["xbench start sector_size=0 bytes=1", "xbench op=fwrite bytes=10 ns=1", "xbench op=fread bytes=10 ns=2", "xbench done"]
                .map(String::from)
                .into(),
            ..result.clone()
        };
        let mut both = Measured::default();
        both.merge(m.clone());
        both.merge(measure(1, &file));
        assert_eq!(both.failure(), None);
        assert_eq!((both.rate["fwrite"], both.rate["fread"], both.sector_size), (10e9, 5e9, Some(512)));
        assert_eq!(m.rate["write"], 50e6);
        assert_eq!(m.rate["read"], 100e6);
        assert_eq!(m.tenths["write"], [100e6, 25e6]);
        assert_eq!(m.sector_size, Some(512));
        let cut = JobResult { text: result.text[..2].to_vec(), ..result.clone() };
        assert_eq!(measure(1, &cut).failure().unwrap(), "incomplete output (missing: read fwrite fread)");
        let failed = JobResult {
            text: vec!["xbench failed the data read at byte 4096 differs".into()],
            ..result.clone()
        };
        assert!(measure(1, &failed).failure().unwrap().contains("differs"));
        let mut xen = JobResult { how: Some("poweroff".into()), ..Default::default() };
        xen.out.stdout = result.text.join("\n").into_bytes();
        assert!(measure(0, &xen).failure().is_some(), "no exit record");
        xen.out.exit = Some(GuestExit::Status(0));
        assert!(measure(0, &xen).trouble.is_none());
        assert_eq!(rate(12_345_678.0), "12.3 MB/s");
    }
}
