//! With two or more vCPUs, two busy threads run at the same time. One thread counts without
//! pause; the other watches the counter for a while and counts how often it saw it change.
//! On one vCPU the counter can only change while the watcher is switched out, so the watcher
//! sees at most one change per time slice of 10 ms (at most 100 in 2 s, about 100 if the two
//! threads take turns); on two vCPUs it sees thousands, even when the host (which emulates the
//! vCPUs on its own threads) lets them overlap only now and then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("available parallelism: {cpus}");
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (count, done) = (counter.clone(), stop.clone());
    let counting = std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Let the counting thread start, then watch for 2 s.
    while counter.load(Ordering::Relaxed) == 0 {
        std::hint::spin_loop();
    }
    let (start, mut last, mut changes) = (Instant::now(), counter.load(Ordering::Relaxed), 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            changes += 1;
            last = now;
        }
    }
    stop.store(true, Ordering::Relaxed);
    counting.join().unwrap();
    let verdict = if changes > 500 { "in parallel" } else { "one at a time" };
    println!("a busy thread watching another: {verdict}");
    eprintln!("the watcher saw {changes} changes in 2 s");
}
