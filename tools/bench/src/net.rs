//! The network benchmark: one std program (`tools/bench/guests/net`: an HTTP server, bulk TCP
//! both ways, its memory figure) built for x86_64-unknown-xen (the kernel's netfront and
//! smoltcp) and statically for Linux, where it is the `/init` of a Linux PV domU (Linux's
//! xen-netfront and TCP/IP). Each guest gets a vif on dom0's bridge; a load generator
//! (`tools/bench/guests/netload`, static Linux) runs in dom0 as the job's driver and times
//! everything on dom0's clock. Both guests are created with xl in one dom0 boot, alternating
//! (ABBA); the table gives each one's figures and Xen's over Linux's against the issue's
//! targets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use xen_runner::cmdline::GuestCommandLine;
use xen_runner::cpio::CpioWriter;

use crate::domu::{self, Job, JobResult};
use crate::stats::{ratio_at_least, summarize, Summary};
use crate::threads::{build_both, cargo_build, ratios, report, round_ratios, seconds};
use crate::{loadavg, now_utc, random_seed, Bench};

/// The guest's crate and the load generator's, in the repository.
const CRATE: &str = "tools/bench/guests/net";
const LOAD_CRATE: &str = "tools/bench/guests/netload";

/// The guests' addresses on dom0's bridge (10.99.0.1/24): one each, so that dom0's neighbour
/// entry for one is never the other's MAC.
const ADDRS: [&str; 2] = ["10.99.0.40", "10.99.0.41"];

/// Memory of both guests, in MiB.
const MEMORY_MIB: u32 = 128;

/// The Linux guest's kernel command line before ` -- ` (see threads.rs).
const LINUX_CMDLINE: &str = "console=hvc0 quiet panic=1";

/// The request-rate figures as the load generator names them, the table's names; the target
/// is Xen's rate over Linux's, at least.
const RPS: [(&str, &str); 3] = [
    ("keepalive1", "HTTP requests/s, 1 keep-alive connection"),
    ("keepalive", "HTTP requests/s, concurrent keep-alive connections"),
    ("close1", "HTTP requests/s, a new connection each"),
];
const TARGET_RPS: f64 = 1.5;

/// The bulk directions, the table's names; the target is Xen's throughput over Linux's.
const BULK: [(&str, &str); 2] = [("from_guest", "bulk TCP, guest to dom0"), ("to_guest", "bulk TCP, dom0 to guest")];
const TARGET_BULK: f64 = 1.0;

/// What the network benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds; each creates the Xen guest and the Linux guest once.
    pub rounds: usize,
    /// MiB of each bulk transfer.
    pub mib: u32,
    /// Seconds of each request-rate figure.
    pub seconds: u32,
    /// Connections held open for the memory figure.
    pub conns: u32,
    /// Concurrent keep-alive connections of the second request-rate figure.
    pub concurrent: u32,
    /// Extra kernel options for the Xen guest (`xen.OPTION=VALUE`).
    pub xen_args: Vec<String>,
    /// The cargo that knows `+xen`.
    pub cargo: String,
    /// Lines to print under the heading.
    pub notes: Vec<String>,
}

struct Guests {
    xen: PathBuf,
    initramfs: PathBuf,
    vmlinux: PathBuf,
    linux_release: String,
    netload: Vec<u8>,
}

/// The job's driver: the bridge's address, then the load generator against the guest, with
/// the guest's and dom0's CPU seconds (xl's view) around it.
fn driver(addr: &str, options: &Options) -> String {
    format!(
        "echo 1 > /proc/sys/net/ipv6/conf/xenbr0/disable_ipv6 2>/dev/null || true
ip addr add 10.99.0.1/24 dev xenbr0 2>/dev/null || true
ip link set xenbr0 up
ip neigh flush dev xenbr0 2>/dev/null || true
wait_output 'xbench ready' 120
cpu() {{ xl list | awk -v d=\"$DOMID\" '$2 == 0 {{ z = $6 }} $2 == d {{ g = $6 }} END {{ print \"xbench cpu\", \"'$1'\", \"dom0=\" z, \"guest=\" g }}'; }}
f=/local/domain/$DOMID/device/vif/0
echo \"xbench features sg=$(xenstore-read $f/feature-sg 2>/dev/null) gso_tcpv4=$(xenstore-read $f/feature-gso-tcpv4 2>/dev/null) rx_copy=$(xenstore-read $f/request-rx-copy 2>/dev/null)\"
cpu before
./netload {addr} seconds={} bulk_mib={} conns={} concurrent={} domid=$DOMID
cpu after
",
        options.seconds, options.mib, options.conns, options.concurrent
    )
}

/// Builds both guests, runs the rounds, and returns the report and whether every figure was
/// measured.
pub fn run(bench: &Bench, options: &Options) -> Result<(String, bool)> {
    let load_before = loadavg();
    let date = now_utc();
    let started = std::time::Instant::now();
    let guests = build(bench, &options.cargo)?;

    // Under load (4-5), a Xen job with 64 MiB each way took 90-130 s (55-65 s of it from
    // the guest, 10-30 s to it), a Linux job 60-90 s, 15 s of it its boot.
    let timeout = 240.0 + 3.0 * f64::from(options.seconds) + 8.0 * f64::from(options.mib);
    let files = vec![("netload".to_owned(), 0o755, guests.netload.clone())];
    // Both guests run with the TSC native, as on a host whose TSC is invariant (every recent
    // x86): QEMU's CPU has no invariant TSC, so Xen's default emulates a domU's rdtsc, a trap
    // of about 3 us a clock read here against 0.1 us in dom0, which taxed the Linux domU's
    // clock reads more than ours (docs/bench.md, "The clock").
    let vif = vec!["vif = [ 'bridge=xenbr0' ]".to_owned(), "tsc_mode = \"native\"".to_owned()];
    let mut jobs = Vec::new();
    let mut order = Vec::new(); // (round, side): side 0 is Xen, 1 Linux
    for round in 0..options.rounds {
        let sides = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in sides {
            order.push((round, side));
            let common = Job {
                memory_mib: MEMORY_MIB,
                vcpus: 1,
                timeout,
                xl_lines: vif.clone(),
                driver: Some(driver(ADDRS[side], options)),
                files: files.clone(),
                ..Job::default()
            };
            jobs.push(if side == 0 {
                let line = GuestCommandLine {
                    argv: vec![b"net".to_vec()],
                    seed: Some(random_seed()?),
                    stdin_eof: true,
                    kernel_args: [format!("xen.ip={}/24", ADDRS[0]), "xen.gw=10.99.0.1".into()]
                        .into_iter()
                        .chain(options.xen_args.iter().cloned())
                        .map(String::into_bytes)
                        .collect(),
                    ..GuestCommandLine::default()
                };
                Job {
                    image: guests.xen.clone(),
                    label: "net-xen".into(),
                    cmdline: line.encode()?,
                    ..common
                }
            } else {
                Job {
                    image: guests.vmlinux.clone(),
                    ramdisk: Some(guests.initramfs.clone()),
                    label: "net-linux".into(),
                    cmdline: format!("{LINUX_CMDLINE} -- ip={}/24", ADDRS[1]),
                    ..common
                }
            });
        }
    }
    let results = domu::run_jobs(bench, &jobs, "net")?;

    let mut runs: [Vec<Option<Measured>>; 2] = [vec![None; options.rounds], vec![None; options.rounds]];
    let mut failures = Vec::new();
    for (&(round, side), result) in order.iter().zip(&results) {
        let measured = measure(side, result);
        match measured.failure() {
            None => runs[side][round] = Some(measured),
            Some(why) => failures.push(format!("{} round {}: {why}", SIDES[side], round + 1)),
        }
    }
    let heading = format!(
        "TCP over a vif on x86_64-unknown-xen vs the same program on Linux {} (the dom0 \
         harness's Debian kernel as a PV domU), each guest on dom0's bridge, driven by a load \
         generator in dom0, both created with xl in one dom0 boot of Xen 4.17 in QEMU, {date}; \
         {} CPUs, load average {load_before} before, {} after; {} round{}; {:.0} s",
        guests.linux_release,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        options.rounds,
        if options.rounds == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    let report = Report { options, runs, failures };
    Ok(report.render(&heading))
}

/// The two guests' names, by side.
const SIDES: [&str; 2] = ["Xen", "Linux domU"];

/// Builds the program for Xen and for Linux, the Linux guest's initramfs (the static program
/// as `/init` and Debian's `xen-netfront.ko`, which it loads) and the load generator.
fn build(bench: &Bench, cargo: &str) -> Result<Guests> {
    let built = build_both(bench, cargo, CRATE, "net")?;
    let module = crate::disk::kernel_module(bench, &built.linux_release, "drivers/net/xen-netfront.ko")?;
    let mut cpio = CpioWriter::new(Vec::new());
    cpio.file("init", 0o755, &built.init)?;
    cpio.file("xen-netfront.ko", 0o644, &module)?;
    let initramfs = bench.work.join("net-initramfs.cpio");
    std::fs::write(&initramfs, cpio.finish()?)?;

    eprintln!("bench: building {LOAD_CRATE} for Linux (/usr/bin/cargo, static), to run in dom0");
    let target_dir = bench.repo.join("target/bench/netload-linux");
    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.args(["build", "--release", "--quiet", "--target", "x86_64-unknown-linux-gnu"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    cargo_build(cmd, &bench.repo.join(LOAD_CRATE))?;
    let stripped = bench.work.join("netload");
    crate::images::strip(&target_dir.join("x86_64-unknown-linux-gnu/release/netload"), &stripped)?;
    let netload = std::fs::read(&stripped).context("reading the load generator")?;
    Ok(Guests {
        xen: built.xen,
        initramfs,
        vmlinux: built.vmlinux,
        linux_release: built.linux_release,
        netload,
    })
}

/// What one run reported: the load generator's lines (the driver's output) and the guest's.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Requests per second, by figure.
    rps: BTreeMap<String, f64>,
    /// Requests answered, by figure.
    requests: BTreeMap<String, f64>,
    /// Failed requests, by figure.
    errors: BTreeMap<String, u64>,
    /// Concurrent connections of the "keepalive" figure.
    concurrent: Option<u64>,
    /// Bytes per second, by direction.
    bulk: BTreeMap<String, f64>,
    /// The guest's memory in use, by connections open.
    mem: BTreeMap<u64, f64>,
    /// CPU seconds of dom0 and the guest over the load generator's run (xl list).
    cpu: Option<(f64, f64)>,
    /// CPU seconds of dom0 and the guest during each phase (request rates, bulk transfers).
    phase_cpu: BTreeMap<String, (f64, f64)>,
    /// dom0's counts during each phase: packets from the guest, packets
    /// to it, the vif's interrupts.
    phase_vif: BTreeMap<String, [f64; 3]>,
    /// The frontend's offload features as it wrote them in xenstore.
    features: Option<String>,
    done: bool,
    trouble: Option<String>,
}

impl Measured {
    fn failure(&self) -> Option<String> {
        if let Some(why) = &self.trouble {
            return Some(why.clone());
        }
        let mut missing: Vec<&str> = RPS.iter().map(|r| r.0).filter(|k| !self.rps.contains_key(*k)).collect();
        missing.extend(BULK.iter().map(|b| b.0).filter(|k| !self.bulk.contains_key(*k)));
        if !self.done || !missing.is_empty() {
            return Some(format!("incomplete output (missing: {})", missing.join(" ")));
        }
        None
    }
}

fn measure(side: usize, result: &JobResult) -> Measured {
    let mut m = Measured::default();
    let mut cpu: [Option<(f64, f64)>; 2] = [None, None];
    for line in &result.driver {
        let Some(at) = line.find("xbench ") else { continue };
        let rest = &line[at + "xbench ".len()..];
        let mut words = rest.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let words: Vec<&str> = words.collect();
        let fields: BTreeMap<&str, &str> = words.iter().filter_map(|w| w.split_once('=')).collect();
        let number = |key: &str| fields.get(key).and_then(|v| v.parse::<f64>().ok());
        match kind {
            "rps" => {
                if let (Some(name), Some(n), Some(ns)) = (fields.get("name"), number("requests"), number("ns")) {
                    m.rps.insert((*name).to_owned(), n / (ns.max(1.0) / 1e9));
                    m.requests.insert((*name).to_owned(), n);
                    m.errors.insert((*name).to_owned(), number("errors").unwrap_or(0.0) as u64);
                    if *name == "keepalive" {
                        m.concurrent = number("conns").map(|c| c as u64);
                    }
                }
            }
            "bulk" => {
                if !words.contains(&"ok") {
                    m.trouble = Some(format!("the data did not arrive intact: {rest}"));
                } else if let (Some(dir), Some(bytes), Some(ns)) = (fields.get("dir"), number("bytes"), number("ns")) {
                    m.bulk.insert((*dir).to_owned(), bytes / (ns.max(1.0) / 1e9));
                }
            }
            "mem" => {
                if let (Some(conns), Some(used)) = (number("conns"), number("used")) {
                    m.mem.insert(conns as u64, used);
                }
            }
            "cpu" if fields.contains_key("phase") => {
                if let (Some(phase), Some(d), Some(g)) = (fields.get("phase"), number("dom0"), number("guest")) {
                    m.phase_cpu.insert((*phase).to_owned(), (d, g));
                }
            }
            "vif" => {
                if let (Some(phase), Some(f), Some(t), Some(i)) =
                    (fields.get("phase"), number("from_guest"), number("to_guest"), number("irqs"))
                {
                    m.phase_vif.insert((*phase).to_owned(), [f, t, i]);
                }
            }
            "cpu" => {
                let slot = usize::from(words.first() == Some(&"after"));
                if let (Some(d), Some(g)) = (number("dom0"), number("guest")) {
                    cpu[slot] = Some((d, g));
                }
            }
            "features" => m.features = Some(words.join(" ")),
            "done" => m.done = true,
            "failed" => m.trouble = Some(format!("the load generator failed: {rest}")),
            _ => {}
        }
    }
    if let [Some(a), Some(b)] = cpu {
        m.cpu = Some((b.0 - a.0, b.1 - a.1));
    }
    if m.trouble.is_none() {
        m.trouble = crate::threads::bad_ending(side, result);
    }
    if m.trouble.is_none() && result.driver_exit != Some(0) {
        m.trouble = Some(format!("the driver ended with {:?}: {}", result.driver_exit, result.driver.join(" | ")));
    }
    m
}

struct Report<'a> {
    options: &'a Options,
    runs: [Vec<Option<Measured>>; 2],
    failures: Vec<String>,
}

impl Report<'_> {
    fn values(&self, side: usize, f: &impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
        self.runs[side].iter().flatten().filter_map(f).collect()
    }

    fn round_ratios(&self, f: &impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
        round_ratios(&self.runs, f, |x, l| (x, l))
    }

    /// One row against a target (Xen over Linux at least `target`) and its note.
    fn row(
        &self,
        name: &str,
        target: f64,
        f: impl Fn(&Measured) -> Option<f64>,
        cell: fn(f64) -> String,
        complete: &mut bool,
    ) -> ([String; 5], String) {
        let (xen, linux) = (summarize(&self.values(0, &f)), summarize(&self.values(1, &f)));
        *complete &= xen.is_some() && linux.is_some();
        let show = |s: Option<Summary>| s.map_or("n/a".into(), |s| cell(s.median));
        let distance = match (xen, linux) {
            (Some(x), Some(l)) if l.median > 0.0 => ratio_at_least(x.median, l.median, target).1,
            _ => "not measured".into(),
        };
        let spread = |s: Option<Summary>| {
            s.map_or("no data".into(), |s| {
                format!("min {}, median {}, max {} (n={})", cell(s.min), cell(s.median), cell(s.max), s.n)
            })
        };
        let note = format!(
            "{name}:\n      Xen:        {}\n      Linux domU: {}\n      Xen / Linux: per-round ratios {}",
            spread(xen),
            spread(linux),
            ratios(summarize(&self.round_ratios(&f)))
        );
        ([name.to_owned(), show(xen), show(linux), format!("Xen / Linux >= {target:.2}"), distance], note)
    }

    /// The notes on one phase: CPU per unit of work (`per`, counted by `units`) and dom0's counts
    /// of the vif per unit, medians of each side.
    fn phase_notes(
        &self,
        key: &str,
        name: &str,
        per: &str,
        time_unit: &str,
        scale: f64,
        digits: usize,
        units: impl Fn(&Measured) -> Option<f64>,
    ) -> [String; 2] {
        let median = |side: usize, f: &dyn Fn(&Measured) -> Option<f64>, digits: usize| {
            summarize(&self.values(side, &|m: &Measured| Some(f(m)? / units(m)?)))
                .map_or("n/a".into(), |s| format!("{:.digits$}", s.median))
        };
        let cpu = |side: usize, which: usize| {
            median(side, &|m: &Measured| m.phase_cpu.get(key).map(|c| if which == 0 { c.0 } else { c.1 } * scale), 0)
        };
        let vif = |side: usize| {
            let count = |which: usize| median(side, &|m: &Measured| Some(m.phase_vif.get(key)?[which]), digits);
            format!("{} packets from the guest, {} to it, {} interrupts", count(0), count(1), count(2))
        };
        [
            format!(
                "{name}, CPU {time_unit} per {per} (xl list, medians): Xen guest {}, its dom0 {}; Linux guest \
                 {}, its dom0 {}",
                cpu(0, 1),
                cpu(0, 0),
                cpu(1, 1),
                cpu(1, 0)
            ),
            format!(
                "{name}, per {per} at dom0's end of the vif (medians; a GSO packet counts one): Xen {}; \
                 Linux domU {}",
                vif(0),
                vif(1)
            ),
        ]
    }

    fn render(&self, heading: &str) -> (String, bool) {
        let mut complete = true;
        let mut rows = vec![["figure", "Xen", "Linux domU", "target", "distance"].map(String::from)];
        let mut notes = Vec::new();
        for (key, name) in RPS {
            let (row, note) = self.row(name, TARGET_RPS, |m| m.rps.get(key).copied(), |v| format!("{v:.0}/s"), &mut complete);
            rows.push(row);
            notes.push(note);
        }
        for (key, name) in BULK {
            let (row, note) = self.row(name, TARGET_BULK, |m| m.bulk.get(key).copied(), rate, &mut complete);
            rows.push(row);
            notes.push(note);
        }
        let conns = u64::from(self.options.conns);
        let mem = |side: usize, conns: u64| summarize(&self.values(side, &|m: &Measured| m.mem.get(&conns).copied()));
        let mib = |s: Option<Summary>| s.map_or("n/a".into(), |s| format!("{:.1} MiB", s.median / f64::from(1u32 << 20)));
        rows.push([
            format!("guest memory in use, {conns} connections open"),
            mib(mem(0, conns)),
            mib(mem(1, conns)),
            "printed (no target)".into(),
            "-".into(),
        ]);
        notes.push(format!(
            "memory in use with no connection (after boot): Xen {}, Linux domU {}; Xen counts \
             the kernel's frames in use (program, heap, stacks, socket buffers), Linux \
             MemTotal less MemFree of /proc/meminfo (its kernel, page cache and slabs included)",
            mib(mem(0, 0)),
            mib(mem(1, 0)),
        ));
        let cpu = |side: usize, which: usize| {
            seconds(summarize(&self.values(side, &|m: &Measured| m.cpu.map(|c| if which == 0 { c.0 } else { c.1 }))))
        };
        notes.push(format!(
            "CPU seconds over the load generator's run (xl list; QEMU emulates one CPU for all \
             domains, so the guest's and dom0's add up to the wall time): Xen guest {}, its dom0 \
             {}; Linux guest {}, its dom0 {}",
            cpu(0, 1),
            cpu(0, 0),
            cpu(1, 1),
            cpu(1, 0)
        ));
        let idle = |side: usize| seconds(summarize(&self.values(side, &|m: &Measured| Some(m.phase_cpu.get("idle")?.0))));
        notes.push(format!(
            "dom0 by itself: its CPU seconds (xl list) over 2 s in which nothing is asked of the \
             guest, with the load generator's readings around them; beside the Xen guest {}, \
             beside the Linux domU {}",
            idle(0),
            idle(1)
        ));
        let mb = f64::from(self.options.mib) * 1.048_576;
        for (key, name) in RPS {
            let requests = |m: &Measured| m.requests.get(key).map(|n| n.max(1.0));
            notes.extend(self.phase_notes(key, name, "request", "us", 1e6, 2, requests));
        }
        for (key, name) in BULK {
            notes.extend(self.phase_notes(key, name, "MB", "ms", 1e3, 0, |_| Some(mb)));
        }
        let features = |side: usize| {
            self.runs[side].iter().flatten().find_map(|m| m.features.clone()).unwrap_or_else(|| "?".into())
        };
        notes.push(format!(
            "the frontends' features in xenstore (empty: not written): Xen {}; Linux domU {}",
            features(0),
            features(1)
        ));
        let errors: u64 = self.runs.iter().flatten().flatten().flat_map(|m| m.errors.values()).sum();
        let concurrent = self.runs.iter().flatten().flatten().find_map(|m| m.concurrent).unwrap_or(0);
        notes.push(format!(
            "setup: {CRATE} in each guest ({MEMORY_MIB} MiB, 1 vCPU, a vif on dom0's bridge \
             xenbr0, tsc_mode native); {LOAD_CRATE} in dom0 (static Linux, std threads) times on dom0's clock: \
             GET / (264 bytes with headers) for {} s each over 1 keep-alive connection, over {concurrent} \
             at once, and with a new connection per request (Connection: close); {} MiB each \
             way over one connection, every word checked against the pattern and the checksums \
             compared; then {conns} keep-alive connections held open (each answered a request) \
             while the guest reports its memory. Failed requests over all runs: {errors}",
            self.options.seconds, self.options.mib,
        ));
        let out = report(
            heading,
            &self.options.notes,
            &rows,
            "Figures are medians over the runs (MB = 10^6 bytes); ratios are Xen's over Linux's, of \
             the medians. Details:",
            notes,
            &self.failures,
            complete,
        );
        (out, complete)
    }
}

/// Bytes per second as MB/s.
fn rate(bytes_per_s: f64) -> String {
    format!("{:.2} MB/s", bytes_per_s / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_load_generator_lines() {
        let mut result = JobResult {
            how: Some("poweroff".into()),
            driver: [
                "xbench cpu before dom0=10.5 guest=0.1",
                "xbench mem conns=0 used=1048576",
                "xbench rps name=keepalive1 conns=1 requests=500 errors=0 ns=5000000000",
                "xbench rps name=keepalive conns=16 requests=2000 errors=1 ns=4000000000",
                "xbench rps name=close1 conns=1 requests=100 errors=0 ns=5000000000",
                "xbench bulk dir=from_guest bytes=1000000 ns=2000000000 sum=00ff ok",
                "xbench bulk dir=to_guest bytes=1000000 ns=1000000000 sum=00ff ok guest_said=\"sum 00ff ok\"",
                "xbench cpu phase=to_guest dom0=1.5 guest=0.5",
                "xbench vif phase=to_guest from_guest=12 to_guest=24 irqs=6",
                "xbench cpu phase=keepalive1 dom0=2.5 guest=0.5",
                "xbench vif phase=keepalive1 from_guest=500 to_guest=505 irqs=500",
                "xbench mem conns=100 used=3145728",
                "xbench cpu after dom0=12.5 guest=1.6",
                "xbench done",
            ]
            .map(String::from)
            .into(),
            driver_exit: Some(0),
            ..Default::default()
        };
        let m = measure(1, &result);
        assert_eq!(m.failure(), None);
        assert_eq!(m.rps["keepalive1"], 100.0);
        assert_eq!(m.rps["keepalive"], 500.0);
        assert_eq!(m.concurrent, Some(16));
        assert_eq!(m.errors["keepalive"], 1);
        assert_eq!(m.bulk["from_guest"], 500_000.0);
        assert_eq!(m.bulk["to_guest"], 1_000_000.0);
        assert_eq!(m.mem[&100], 3_145_728.0);
        assert_eq!(m.cpu, Some((2.0, 1.5)));
        assert_eq!(m.phase_cpu["to_guest"], (1.5, 0.5));
        assert_eq!(m.phase_vif["to_guest"], [12.0, 24.0, 6.0]);
        // Per MB (1 MiB bulk here) and per request (500 requests), each side.
        let options = Options {
            rounds: 1,
            seconds: 5,
            mib: 1,
            conns: 100,
            concurrent: 16,
            xen_args: Vec::new(),
            cargo: String::new(),
            notes: Vec::new(),
        };
        let report = Report { options: &options, runs: [vec![Some(m.clone())], vec![Some(m.clone())]], failures: Vec::new() };
        let [cpu, vif] = report.phase_notes("to_guest", "bulk", "MB", "ms", 1e3, 0, |_| Some(1.048_576));
        assert!(cpu.contains("Xen guest 477, its dom0 1431"), "{cpu}");
        assert!(vif.contains("Xen 11 packets from the guest, 23 to it, 6 interrupts"), "{vif}");
        let [cpu, vif] = report.phase_notes("keepalive1", "rps", "request", "us", 1e6, 2, |m| m.requests.get("keepalive1").copied());
        assert!(cpu.contains("Xen guest 1000, its dom0 5000"), "{cpu}");
        assert!(vif.contains("Linux domU 1.00 packets from the guest, 1.01 to it, 1.00 interrupts"), "{vif}");
        result.driver[5] = "xbench bulk dir=from_guest bytes=1000000 ns=2000000000 sum=00fe bad".into();
        assert!(measure(1, &result).failure().unwrap().contains("intact"));
        result.driver.truncate(5);
        assert!(measure(1, &result).failure().unwrap().starts_with("incomplete"));
        let xen = JobResult { driver: result.driver.clone(), driver_exit: Some(0), ..Default::default() };
        assert!(measure(0, &xen).failure().is_some(), "no exit record");
    }
}
