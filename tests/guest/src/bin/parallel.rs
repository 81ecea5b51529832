//! With two or more vCPUs, two busy threads run at the same time: they hand a token back and
//! forth by spinning on an atomic, never blocking. On one vCPU every hand-over waits for a time
//! slice to end; on two it takes microseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ROUNDS: u32 = 1000;

fn main() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("available parallelism: {cpus}");
    let token = Arc::new(AtomicU32::new(0));
    let other = token.clone();
    let start = Instant::now();
    let partner = std::thread::spawn(move || {
        for round in 0..ROUNDS {
            while other.load(Ordering::Acquire) != round * 2 + 1 {
                std::hint::spin_loop();
            }
            other.store(round * 2 + 2, Ordering::Release);
        }
    });
    for round in 0..ROUNDS {
        while token.load(Ordering::Acquire) != round * 2 {
            std::hint::spin_loop();
        }
        token.store(round * 2 + 1, Ordering::Release);
    }
    partner.join().unwrap();
    let elapsed = start.elapsed();
    // One vCPU needs a 10 ms time slice per hand-over: at least 20 s for 2000 of them.
    println!("{ROUNDS} spin round trips: {}", if elapsed < Duration::from_secs(10) { "in parallel" } else { "one at a time" });
    eprintln!("{ROUNDS} spin round trips took {elapsed:?}");
}
