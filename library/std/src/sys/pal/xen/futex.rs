//! Futexes for std's locks, condition variables and thread parking, over the kernel's
//! `xk_futex_wait` and `xk_futex_wake`.

use super::abi;
use crate::sync::atomic::Atomic;
use crate::time::{Duration, Instant};

/// An atomic for use as a futex that is at least 32-bits but may be larger
pub type Futex = Atomic<Primitive>;
/// Must be the underlying type of Futex
pub type Primitive = u32;

/// An atomic for use as a futex that is at least 8-bits but may be larger.
pub type SmallFutex = Atomic<SmallPrimitive>;
/// Must be the underlying type of SmallFutex
pub type SmallPrimitive = u32;

/// Waits while `futex` holds `expected`, for at most `timeout`; returns false on timeout.
pub fn futex_wait(futex: &Atomic<u32>, expected: u32, timeout: Option<Duration>) -> bool {
    // A timeout too far away to express is no timeout.
    let deadline = timeout
        .and_then(|dur| Instant::now().checked_add(dur))
        .map_or(u64::MAX, |at| at.into_inner().as_kernel_nanos());
    // SAFETY: `futex` is a live, aligned `u32` for the whole call.
    let ret = unsafe { abi::xk_futex_wait(futex.as_ptr(), expected, deadline) };
    ret != -abi::ETIMEDOUT
}

/// Wakes one waiter; returns whether there was one.
pub fn futex_wake(futex: &Atomic<u32>) -> bool {
    // SAFETY: the kernel only compares the address; it need not stay valid.
    unsafe { abi::xk_futex_wake(futex.as_ptr(), 1) > 0 }
}

/// Wakes every waiter.
pub fn futex_wake_all(futex: &Atomic<u32>) {
    // SAFETY: as above.
    unsafe { abi::xk_futex_wake(futex.as_ptr(), u32::MAX) };
}
