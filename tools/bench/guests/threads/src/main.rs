//! The thread benchmark's guest (`docs/bench.md`): times thread spawn and join, an uncontended
//! `Mutex` lock and unlock, a `Condvar` ping-pong round trip between two threads, and how late
//! `sleep(1 ms)` wakes, all in the guest with `Instant`. The same source is built for
//! `x86_64-unknown-xen` and, statically, for Linux, where it is the `/init` of a domU and powers
//! the domain off at the end.
//!
//! Arguments (all optional; `tools/bench` always passes them): `spawn=N mutex=N condvar=N
//! sleep=N`, the iterations of each part. One line per figure on stdout, each starting with
//! `xbench ` (a Linux console carries the kernel's lines too):
//!
//! ```text
//! xbench start os=linux parallelism=1 spawn=500 mutex=1000000 condvar=5000 sleep=200
//! xbench op=spawn_join n=500 total_ns=... per_op_ns=... tenths_ns=a,b,...,j
//! xbench op=mutex n=1000000 total_ns=... per_op_ns=... tenths_ns=...
//! xbench op=condvar_round_trip n=5000 total_ns=... per_op_ns=... tenths_ns=...
//! xbench op=sleep_1ms n=200 median_over_ns=... mean_over_ns=... min_over_ns=... max_over_ns=... samples_us=...
//! xbench done
//! ```
//!
//! `tenths_ns` is the time per operation in each tenth of the run, in order, which shows
//! whether a few slow stretches (a preemption, a timer) or the whole run make the figure.

use std::hint::black_box;
use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The iterations of each part.
#[derive(Debug, Clone, Copy)]
struct Counts {
    spawn: u32,
    mutex: u32,
    condvar: u32,
    sleep: u32,
}

/// The sleep whose overshoot is measured.
const SLEEP: Duration = Duration::from_millis(1);

fn main() {
    let code = match parse(std::env::args().skip(1)) {
        Ok(counts) => match std::panic::catch_unwind(|| run(counts)) {
            Ok(()) => 0,
            Err(_) => 101,
        },
        Err(why) => {
            eprintln!("threads: {why}");
            2
        }
    };
    let _ = std::io::stdout().flush();
    #[cfg(target_os = "linux")]
    if std::process::id() == 1 {
        // As Linux's init, returning would panic the kernel: power the domain off instead.
        if code != 0 {
            println!("xbench failed status={code}");
        }
        init::power_off();
    }
    std::process::exit(code);
}

fn parse(args: impl Iterator<Item = String>) -> Result<Counts, String> {
    let mut counts = Counts { spawn: 500, mutex: 1_000_000, condvar: 5_000, sleep: 200 };
    for arg in args {
        let (name, value) = arg.split_once('=').ok_or(format!("not NAME=N: {arg:?}"))?;
        let value: u32 = value.parse().map_err(|_| format!("not a number: {arg:?}"))?;
        if value < 10 {
            return Err(format!("at least 10 iterations: {arg:?}"));
        }
        match name {
            "spawn" => counts.spawn = value,
            "mutex" => counts.mutex = value,
            "condvar" => counts.condvar = value,
            "sleep" => counts.sleep = value,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(counts)
}

fn run(counts: Counts) {
    println!(
        "xbench start os={} parallelism={} spawn={} mutex={} condvar={} sleep={}",
        if cfg!(target_os = "linux") { "linux" } else { "xen" },
        thread::available_parallelism().map_or(0, |n| n.get()),
        counts.spawn,
        counts.mutex,
        counts.condvar,
        counts.sleep
    );

    // Each part first runs a tenth of its iterations uncounted (stacks, first faults, caches).
    timed("spawn_join", counts.spawn, |n| {
        for _ in 0..n {
            thread::spawn(|| black_box(1u32)).join().expect("the thread panicked");
        }
    });

    let mutex = Mutex::new(0u64);
    timed("mutex", counts.mutex, |n| {
        for _ in 0..n {
            *black_box(&mutex).lock().unwrap() += 1;
        }
    });

    condvar_ping_pong(counts.condvar);

    sleep_overshoot(counts.sleep);
    println!("xbench done");
}

/// Runs `body(n / 10)` uncounted, then `body` over each tenth of `n`, timed, and prints the line.
fn timed(op: &str, n: u32, mut body: impl FnMut(u32)) {
    body(n / 10);
    let mut tenths = Vec::with_capacity(10);
    let start = Instant::now();
    let mut last = start;
    for k in 0..10 {
        let count = n * (k + 1) / 10 - n * k / 10;
        body(count);
        let now = Instant::now();
        tenths.push((now - last).as_nanos() as f64 / f64::from(count));
        last = now;
    }
    report(op, n, (last - start).as_nanos(), &tenths);
}

fn report(op: &str, n: u32, total_ns: u128, tenths: &[f64]) {
    let tenths: Vec<String> = tenths.iter().map(|t| format!("{t:.1}")).collect();
    println!(
        "xbench op={op} n={n} total_ns={total_ns} per_op_ns={:.1} tenths_ns={}",
        total_ns as f64 / f64::from(n),
        tenths.join(",")
    );
}

/// The two sides of the ping-pong: `ball` is true while it is the worker's turn.
struct Table {
    ball: Mutex<bool>,
    to_worker: Condvar,
    to_main: Condvar,
}

/// One round trip: main hands the ball over and waits until it comes back.
fn condvar_ping_pong(n: u32) {
    let warm = n / 10;
    let table = Arc::new(Table {
        ball: Mutex::new(false),
        to_worker: Condvar::new(),
        to_main: Condvar::new(),
    });
    let worker = {
        let table = Arc::clone(&table);
        thread::spawn(move || {
            for _ in 0..warm + n {
                let mut ball = table.ball.lock().unwrap();
                while !*ball {
                    ball = table.to_worker.wait(ball).unwrap();
                }
                *ball = false;
                table.to_main.notify_one();
            }
        })
    };
    let round_trips = |count: u32| {
        for _ in 0..count {
            let mut ball = table.ball.lock().unwrap();
            *ball = true;
            table.to_worker.notify_one();
            while *ball {
                ball = table.to_main.wait(ball).unwrap();
            }
        }
    };
    round_trips(warm);
    let mut tenths = Vec::with_capacity(10);
    let start = Instant::now();
    let mut last = start;
    for k in 0..10 {
        let count = n * (k + 1) / 10 - n * k / 10;
        round_trips(count);
        let now = Instant::now();
        tenths.push((now - last).as_nanos() as f64 / f64::from(count));
        last = now;
    }
    worker.join().expect("the worker panicked");
    report("condvar_round_trip", n, (last - start).as_nanos(), &tenths);
}

/// How much later than asked `sleep(1 ms)` returns, `n` times.
fn sleep_overshoot(n: u32) {
    for _ in 0..n / 10 {
        thread::sleep(SLEEP);
    }
    let mut over: Vec<u128> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        thread::sleep(SLEEP);
        let slept = start.elapsed();
        // A sleep is never early (std's contract); a negative value would be a clock bug.
        over.push(slept.as_nanos().saturating_sub(SLEEP.as_nanos()));
        if slept < SLEEP {
            println!("xbench early_sleep slept_ns={}", slept.as_nanos());
        }
    }
    let samples: Vec<String> = over.iter().map(|o| format!("{}", o / 1000)).collect();
    let mut sorted = over.clone();
    sorted.sort_unstable();
    let len = sorted.len();
    let median =
        if len % 2 == 1 { sorted[len / 2] } else { (sorted[len / 2 - 1] + sorted[len / 2]) / 2 };
    println!(
        "xbench op=sleep_1ms n={n} median_over_ns={median} mean_over_ns={} min_over_ns={} \
         max_over_ns={} samples_us={}",
        sorted.iter().sum::<u128>() / len as u128,
        sorted[0],
        sorted[len - 1],
        samples.join(",")
    );
}

#[path = "../../linux_init.rs"]
mod init;
