//! Instant is monotonic, sleep is never early, and SystemTime is the time of day.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let start = Instant::now();
    let mut last = start;
    for _ in 0..10_000 {
        let now = Instant::now();
        assert!(now >= last, "Instant went back");
        last = now;
    }
    for ms in [1u64, 10, 50] {
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(ms));
        let slept = before.elapsed();
        assert!(slept >= Duration::from_millis(ms), "slept {slept:?} for {ms} ms");
    }
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let host: u64 = std::env::var("HOST_TIME").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    println!("wall clock within a minute of the host's: {}", wall.abs_diff(host) < 60);
    println!("monotonic and sleeps honoured");
}
