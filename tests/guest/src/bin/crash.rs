//! Reads an unmapped address: the guest must crash with a report.

#[inline(never)]
fn read_unmapped(address: usize) -> u64 {
    // SAFETY: not safe at all; that is the test.
    unsafe { std::ptr::read_volatile(address as *const u64) }
}

fn main() {
    println!("about to read address 0x18");
    let value = read_unmapped(std::hint::black_box(0x18));
    println!("read {value}, which must not happen");
}
