//! Recurses without end, in `main` or in a named thread: reported as on Linux.

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    std::hint::black_box(&frame);
    if depth == 0 { 0 } else { recurse(depth - 1) + frame[3] }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("thread") => {
            let worker = std::thread::Builder::new().name("deep".into());
            let _ = worker.spawn(|| recurse(u64::MAX)).unwrap().join();
        }
        _ => println!("{}", recurse(u64::MAX)),
    }
}
