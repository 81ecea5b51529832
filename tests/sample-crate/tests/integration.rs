//! An integration test binary of its own.

#[test]
fn adds_across_the_crate_boundary() {
    assert_eq!(sample_crate::add(40, 2), 42);
}

#[test]
fn sleeps_are_not_early() {
    let start = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(start.elapsed() >= std::time::Duration::from_millis(20));
}
