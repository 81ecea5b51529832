//! `std::os::xen::domain::{memory_total, memory_used}`: the total is the guest's memory, the
//! figure in use grows by at least what the program touches and shrinks when it gives it back.

#[cfg(target_os = "xen")]
fn main() {
    use std::os::xen::domain;

    let mib = |bytes: u64| bytes >> 20;
    let total = domain::memory_total();
    let before = domain::memory_used();
    assert!(before > 0 && before < total, "in use {before} of {total}");
    // 32 MiB in 1 MiB blocks (each its own pages from the kernel), every page written.
    let blocks: Vec<Vec<u8>> = (0..32).map(|i| vec![i as u8 | 1; 1 << 20]).collect();
    let during = domain::memory_used();
    assert!(during >= before + (32 << 20), "32 MiB more in use, but {before} then {during}");
    assert!(during < total, "in use {during} of {total}");
    let sum: u64 = blocks.iter().map(|b| u64::from(b[b.len() - 1])).sum();
    drop(blocks);
    println!("total {} MiB", mib(total));
    println!("32 MiB touched: in use grew by at least 32 MiB ({sum})");
}

#[cfg(not(target_os = "xen"))]
fn main() {
    println!("xen only");
}
