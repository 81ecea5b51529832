//! Return addresses of the calls that led to a crash, found by walking frame pointers (the
//! target keeps them: `frame-pointer = always`).

/// The most frames a crash report lists.
pub const MAX_FRAMES: usize = 32;

/// Return addresses, innermost first, starting from frame pointer `rbp`.
///
/// Each frame holds the caller's `rbp` at `[rbp]` and the return address at `[rbp + 8]`. The
/// walk stops at a null, misaligned or non-increasing pointer, or one outside the direct map, so
/// a corrupt stack ends the list rather than faulting.
#[cfg(target_os = "none")]
pub fn frames(mut rbp: u64) -> impl Iterator<Item = u64> {
    let limit = crate::boot::memory_end();
    let low = crate::mm::paging::VIRT_BASE;
    let mut count = 0;
    core::iter::from_fn(move || {
        if count == MAX_FRAMES || rbp % 8 != 0 || rbp < low || rbp + 16 > limit {
            return None;
        }
        // SAFETY: `rbp` lies inside the guest's memory; a guard page would fault, which the
        // crash handler turns into an immediate stop.
        let (next, ret) = unsafe { ((rbp as *const u64).read_volatile(), ((rbp + 8) as *const u64).read_volatile()) };
        if ret == 0 {
            return None;
        }
        count += 1;
        rbp = if next > rbp { next } else { 0 };
        Some(ret)
    })
}
