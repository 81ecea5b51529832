//! The network benchmark's load generator (docs/bench.md, "Network"): a static Linux program
//! that the bench puts in the job's folder of the harness's dom0, where the job's driver runs
//! it against the guest's servers (`tools/bench/guests/net`):
//!
//!     netload HOST [seconds=5] [bulk_mib=64] [conns=100] [concurrent=16] [domid=N]
//!
//! In order: 2 s of nothing (what dom0 spends by itself), HTTP requests per second over one
//! keep-alive connection, over `concurrent` keep-alive connections at once, and with a new
//! connection per request; `bulk_mib` MiB from the guest and `bulk_mib` MiB to it, each
//! checked word by word against the pattern and by checksum; the guest's memory idle and with
//! `conns` connections open (each has answered a request); then it asks the guest to quit.
//! Everything is timed here, in dom0, so both guests are measured by the same clock. It
//! prints `xbench` lines that tools/bench reads:
//!
//!     xbench rps name=keepalive1 conns=1 requests=N errors=E ns=T
//!     xbench bulk dir=from_guest bytes=N ns=T sum=HEX ok
//!     xbench mem conns=0 used=BYTES
//!     xbench cpu phase=from_guest dom0=SECONDS guest=SECONDS   (with domid=: xl's view; also
//!         for each request-rate phase)
//!     xbench dom0ticks phase=from_guest user=N system=N ... (dom0's /proc/stat, clock ticks)
//!     xbench tasks phase=from_guest NAME:TID=USER/SYSTEM/SWITCHED_TO ...   (dom0's busiest
//!         threads: ticks and times run, from /proc/PID/task/TID/stat and schedstat)
//!     xbench vif phase=from_guest from_guest=PACKETS to_guest=PACKETS irqs=N   (with domid=:
//!         dom0's counters of the guest's vif: netback's packets each way, its interrupts)
//!     xbench done
//!     xbench failed WHY

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../../bulk_wire.rs"]
mod wire;
use wire::{BULK_PORT, CONTROL_PORT, HTTP_PORT, Sum, pattern_word};

/// How long the first phase asks nothing of the guest.
const IDLE: Duration = Duration::from_secs(2);

struct Plan {
    host: std::net::IpAddr,
    seconds: u64,
    bulk_bytes: u64,
    conns: usize,
    concurrent: usize,
    /// The guest's domain id, for its CPU seconds (`xl list`) around each bulk transfer.
    domid: Option<u64>,
}

fn plan() -> Result<Plan, String> {
    let mut args = std::env::args().skip(1);
    let host = args.next().ok_or("give HOST")?;
    let host = host.parse().map_err(|_| format!("{host}: not an IP address"))?;
    let mut plan = Plan { host, seconds: 5, bulk_bytes: 64 << 20, conns: 100, concurrent: 16, domid: None };
    for arg in args {
        let (key, value) = arg.split_once('=').ok_or(format!("{arg}: give KEY=VALUE"))?;
        let n: u64 = value.parse().map_err(|_| format!("{arg}: not a number"))?;
        match key {
            "seconds" => plan.seconds = n.max(1),
            "bulk_mib" => plan.bulk_bytes = n << 20,
            "conns" => plan.conns = n as usize,
            "concurrent" => plan.concurrent = (n as usize).max(1),
            "domid" => plan.domid = Some(n),
            _ => return Err(format!("{arg}: unknown")),
        }
    }
    Ok(plan)
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends one `GET /` on `stream` and reads the whole answer; with `close`, asks the server to
/// close and reads to the end.
fn get(stream: &TcpStream, reader: &mut BufReader<&TcpStream>, close: bool) -> std::io::Result<()> {
    let connection = if close { "close" } else { "keep-alive" };
    (&*stream).write_all(format!("GET / HTTP/1.1\r\nHost: guest\r\nConnection: {connection}\r\n\r\n").as_bytes())?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("status line {line:?}")));
    }
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("the connection ended in the headers"));
        }
        if line.trim_end().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("no Content-Length"))?;
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    if !body.starts_with(b"<!DOCTYPE html>") {
        return Err(std::io::Error::other("not the page"));
    }
    Ok(())
}

/// Requests per second for `seconds`: `conns` clients at once, each on one keep-alive
/// connection or (with `close`) a new connection per request.
fn rps(plan: &Plan, name: &str, conns: usize, close: bool) {
    let addr = SocketAddr::new(plan.host, HTTP_PORT);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(plan.seconds);
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (done, errors) = (done.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut kept: Option<TcpStream> = None;
                while Instant::now() < until {
                    let stream = match kept.take() {
                        Some(s) => s,
                        None => match connect(addr) {
                            Ok(s) => s,
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let mut reader = BufReader::new(&stream);
                    let ok = get(&stream, &mut reader, close).is_ok();
                    drop(reader);
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                        if !close {
                            kept = Some(stream);
                        }
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let ns = start.elapsed().as_nanos();
    println!(
        "xbench rps name={name} conns={conns} requests={} errors={} ns={ns}",
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
}

/// Checks the pattern as words arrive in pieces of any length.
struct Checker {
    sum: Sum,
    words: u64,
    carry: [u8; 8],
    carried: usize,
    bad: Option<u64>,
}

impl Checker {
    fn new() -> Checker {
        Checker { sum: Sum::new(), words: 0, carry: [0; 8], carried: 0, bad: None }
    }
    fn word(&mut self, w: u64) {
        self.sum.add(w);
        if self.bad.is_none() && w != pattern_word(self.words) {
            self.bad = Some(self.words * 8);
        }
        self.words += 1;
    }
    fn feed(&mut self, mut data: &[u8]) {
        if self.carried > 0 {
            let take = (8 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&data[..take]);
            self.carried += take;
            data = &data[take..];
            if self.carried < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let mut whole = data.chunks_exact(8);
        for w in &mut whole {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = whole.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }
}

/// `bulk_bytes` from the guest, checked.
fn from_guest(plan: &Plan) -> Result<(), String> {
    let n = plan.bulk_bytes;
    let start = Instant::now();
    let mut stream = connect(SocketAddr::new(plan.host, BULK_PORT)).map_err(|e| format!("connect: {e}"))?;
    stream.write_all(format!("get {n}\n").as_bytes()).map_err(|e| format!("request: {e}"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut check = Checker::new();
    let mut got = 0u64;
    loop {
        let k = stream.read(&mut buf).map_err(|e| format!("after {got} bytes: {e}"))?;
        if k == 0 {
            break;
        }
        check.feed(&buf[..k]);
        got += k as u64;
    }
    let ns = start.elapsed().as_nanos();
    if got != n || check.carried != 0 {
        return Err(format!("from the guest: {got} of {n} bytes"));
    }
    if let Some(at) = check.bad {
        return Err(format!("from the guest: byte {at} differs from the pattern"));
    }
    // The sender's sum is the pattern's: compute it as the guest did.
    let mut expected = Sum::new();
    (0..n / 8).for_each(|i| expected.add(pattern_word(i)));
    let verdict = if expected.0 == check.sum.0 { "ok" } else { "bad" };
    println!("xbench bulk dir=from_guest bytes={n} ns={ns} sum={:016x} {verdict}", check.sum.0);
    Ok(())
}

/// `bulk_bytes` to the guest, which checks them and answers with its checksum.
fn to_guest(plan: &Plan) -> Result<(), String> {
    let n = plan.bulk_bytes;
    let mut buf = vec![0u8; 256 * 1024];
    let mut sum = Sum::new();
    let start = Instant::now();
    let mut stream = connect(SocketAddr::new(plan.host, BULK_PORT)).map_err(|e| format!("connect: {e}"))?;
    stream.write_all(format!("put {n}\n").as_bytes()).map_err(|e| format!("request: {e}"))?;
    let mut word = 0u64;
    while word < n / 8 {
        let take = (n / 8 - word).min(buf.len() as u64 / 8) as usize;
        for (i, w) in buf[..take * 8].chunks_exact_mut(8).enumerate() {
            let v = pattern_word(word + i as u64);
            sum.add(v);
            w.copy_from_slice(&v.to_le_bytes());
        }
        stream.write_all(&buf[..take * 8]).map_err(|e| format!("after {} bytes: {e}", word * 8))?;
        word += take as u64;
    }
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| format!("the guest's checksum: {e}"))?;
    let ns = start.elapsed().as_nanos();
    let want = format!("sum {:016x} ok", sum.0);
    let verdict = if line.trim_end() == want { "ok" } else { "bad" };
    println!("xbench bulk dir=to_guest bytes={n} ns={ns} sum={:016x} {verdict} guest_said={:?}", sum.0, line.trim_end());
    Ok(())
}

/// Asks the control port `what` (one line) and returns the answer.
fn control(plan: &Plan, what: &str) -> Result<String, String> {
    let stream = connect(SocketAddr::new(plan.host, CONTROL_PORT)).map_err(|e| format!("control: {e}"))?;
    (&stream).write_all(format!("{what}\n").as_bytes()).map_err(|e| format!("control: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(|e| format!("control: {e}"))?;
    Ok(line.trim_end().to_owned())
}

/// Prints the guest's memory in use; a guest that cannot tell is reported, not fatal.
fn memory(plan: &Plan, conns: usize) -> Result<(), String> {
    let answer = control(plan, "mem")?;
    match answer.strip_prefix("mem used=") {
        Some(used) => println!("xbench mem conns={conns} used={used}"),
        None => println!("xbench mem conns={conns} failed {answer:?}"),
    }
    Ok(())
}

/// Opens `plan.conns` connections, each answering one request, and reads the guest's memory
/// while all are open.
fn hold(plan: &Plan) -> Result<(), String> {
    let addr = SocketAddr::new(plan.host, HTTP_PORT);
    let mut open = Vec::with_capacity(plan.conns);
    for i in 0..plan.conns {
        let stream = connect(addr).map_err(|e| format!("connection {i}: {e}"))?;
        get(&stream, &mut BufReader::new(&stream), false).map_err(|e| format!("connection {i}: {e}"))?;
        open.push(stream);
    }
    memory(plan, open.len())?;
    // Each still answers.
    for (i, stream) in open.iter().enumerate() {
        get(stream, &mut BufReader::new(stream), false).map_err(|e| format!("connection {i} again: {e}"))?;
    }
    Ok(())
}

/// dom0's and the guest's CPU seconds so far, from `xl list`'s Time(s) column.
fn cpu_seconds(domid: u64) -> Option<(f64, f64)> {
    let out = std::process::Command::new("xl").arg("list").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let time = |id: u64| {
        text.lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 6 && cols[1] == id.to_string()).then(|| cols[5].parse::<f64>().ok()).flatten()
        })
    };
    Some((time(0)?, time(domid)?))
}

/// dom0's counters of the guest's vif 0: packets netback took from the guest, packets it gave
/// the guest (one each for a GSO packet), and the interrupts of the vif's event channels.
fn vif_counters(domid: u64) -> Option<[u64; 3]> {
    let dir = format!("/sys/class/net/vif{domid}.0/statistics");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).ok()?.trim().parse::<u64>().ok();
    // dom0's rx is what the guest sent.
    let (from_guest, to_guest) = (read("rx_packets")?, read("tx_packets")?);
    let table = std::fs::read_to_string("/proc/interrupts").ok()?;
    let name = format!("vif{domid}.0");
    let irqs = table
        .lines()
        .filter(|l| l.split_whitespace().last().is_some_and(|n| n.starts_with(&name)))
        .map(|l| l.split_whitespace().skip(1).map_while(|w| w.parse::<u64>().ok()).sum::<u64>())
        .sum();
    Some([from_guest, to_guest, irqs])
}

/// dom0's TCP counters (`Tcp:` of /proc/net/snmp, `TcpExt:` of /proc/net/netstat), by name.
fn tcp_counters() -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for file in ["/proc/net/snmp", "/proc/net/netstat"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks_exact(2) {
            let (names, values) = (pair[0].split_whitespace(), pair[1].split_whitespace());
            if pair[0].starts_with("Tcp:") || pair[0].starts_with("TcpExt:") {
                for (n, v) in names.zip(values).skip(1) {
                    if let Ok(v) = v.parse() {
                        out.insert(n.to_owned(), v);
                    }
                }
            }
        }
    }
    out
}

/// dom0's CPU time so far by kind, in clock ticks (the `cpu` line of /proc/stat): user, nice,
/// system, idle, iowait, irq, softirq, steal.
fn dom0_ticks() -> Option<[u64; 8]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut fields = stat.lines().next()?.split_whitespace().skip(1).map(|w| w.parse::<u64>().ok());
    let mut out = [0; 8];
    for slot in &mut out {
        *slot = fields.next()??;
    }
    Some(out)
}

/// Every dom0 thread's user and system ticks so far (fields 14 and 15 of
/// /proc/PID/task/TID/stat) and the times it was switched to (schedstat), keyed by
/// "comm:tid".
fn task_ticks() -> std::collections::BTreeMap<String, (u64, u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else { continue };
        for t in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
            // The name is in parentheses and may hold spaces; the fields after it are plain.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
            if let (Some(u), Some(s)) = (rest.get(11).and_then(|v| v.parse().ok()), rest.get(12).and_then(|v| v.parse().ok())) {
                // Times it was switched to (schedstat's third field).
                let slices = std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|v| v.split_whitespace().nth(2).and_then(|w| w.parse().ok()))
                    .unwrap_or(0);
                out.insert(format!("{}:{}", &stat[open + 1..close], t.file_name().to_string_lossy()), (u, s, slices));
            }
        }
    }
    out
}

/// Runs `f` as the phase `phase`, then prints what it cost: the CPU seconds dom0 and the guest
/// spent meanwhile, dom0's CPU ticks by kind, the TCP counters that moved, and dom0's counts of
/// the vif's packets and interrupts.
fn measured(plan: &Plan, phase: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let before = plan.domid.and_then(cpu_seconds);
    let vif_before = plan.domid.and_then(vif_counters);
    let tcp_before = tcp_counters();
    let ticks_before = dom0_ticks();
    let tasks_before = task_ticks();
    f()?;
    let mut busiest: Vec<(u64, String)> = task_ticks()
        .into_iter()
        .filter_map(|(k, (u, s, n))| {
            let (bu, bs, bn) = tasks_before.get(&k).copied().unwrap_or((0, 0, 0));
            let d = (u - bu.min(u), s - bs.min(s), n - bn.min(n));
            (d.0 + d.1 > 0).then(|| (d.0 + d.1, format!("{k}={}/{}/{}", d.0, d.1, d.2)))
        })
        .collect();
    busiest.sort_by(|a, b| b.0.cmp(&a.0));
    let top: Vec<&str> = busiest.iter().take(8).map(|(_, s)| s.as_str()).collect();
    println!("xbench tasks phase={phase} {}", top.join(" "));
    if let (Some(b), Some(a)) = (ticks_before, dom0_ticks()) {
        let d: Vec<String> = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
            .iter()
            .zip(a.iter().zip(b))
            .map(|(name, (a, b))| format!("{name}={}", a - b))
            .collect();
        println!("xbench dom0ticks phase={phase} {}", d.join(" "));
    }
    let moved: Vec<String> = tcp_counters()
        .into_iter()
        .filter_map(|(k, v)| {
            let d = v - tcp_before.get(&k).copied().unwrap_or(0);
            (d != 0 && !k.starts_with("Rto") && k != "MaxConn" && k != "CurrEstab").then(|| format!("{k}={d}"))
        })
        .collect();
    println!("xbench tcpstat phase={phase} {}", moved.join(" "));
    if let (Some(id), Some(b)) = (plan.domid, before)
        && let Some(a) = cpu_seconds(id)
    {
        println!("xbench cpu phase={phase} dom0={:.1} guest={:.1}", a.0 - b.0, a.1 - b.1);
    }
    if let (Some(id), Some(b)) = (plan.domid, vif_before)
        && let Some(a) = vif_counters(id)
    {
        let [f, t, i] = [0, 1, 2].map(|k| a[k] - b[k]);
        println!("xbench vif phase={phase} from_guest={f} to_guest={t} irqs={i}");
    }
    Ok(())
}

fn run(plan: &Plan) -> Result<(), String> {
    let start = Instant::now();
    let addr = SocketAddr::new(plan.host, CONTROL_PORT);
    while connect(addr).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("nothing listens on {addr} after 60 s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    memory(plan, 0)?;
    // What dom0 spends while nothing is asked of the guest: the harness's and this program's
    // own share of the one emulated CPU.
    measured(plan, "idle", || {
        std::thread::sleep(IDLE);
        Ok(())
    })?;
    measured(plan, "keepalive1", || Ok(rps(plan, "keepalive1", 1, false)))?;
    measured(plan, "keepalive", || Ok(rps(plan, "keepalive", plan.concurrent, false)))?;
    measured(plan, "close1", || Ok(rps(plan, "close1", 1, true)))?;
    if plan.bulk_bytes > 0 {
        measured(plan, "from_guest", || from_guest(plan))?;
        measured(plan, "to_guest", || to_guest(plan))?;
    }
    if plan.conns > 0 {
        hold(plan)?;
    }
    Ok(())
}

fn main() {
    let plan = match plan() {
        Ok(p) => p,
        Err(e) => {
            println!("xbench failed {e}");
            std::process::exit(2);
        }
    };
    let outcome = run(&plan);
    // Whatever happened, the guest is asked to end, so that the job does not run to its limit.
    let quit = control(&plan, "quit");
    match outcome {
        Ok(()) => println!("xbench done"),
        Err(e) => println!("xbench failed {e}"),
    }
    if let Err(e) = quit {
        println!("xbench failed quit: {e}");
    }
}
