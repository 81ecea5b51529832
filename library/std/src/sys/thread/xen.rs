//! Threads on Xen.
//!
//! FIXME: the kernel has no scheduler yet, so `Thread::new` fails with `Unsupported` (and
//! `thread::spawn` panics with std's own message); the program runs on one thread. Sleeping,
//! yielding and `available_parallelism` already work.

use crate::io;
use crate::num::NonZero;
use crate::sys::pal::abi;
use crate::thread::ThreadInit;
use crate::time::{Duration, Instant};

pub struct Thread(!);

pub const DEFAULT_MIN_STACK_SIZE: usize = 256 * 1024;

impl Thread {
    // unsafe: see thread::Builder::spawn_unchecked for safety requirements
    pub unsafe fn new(_stack: usize, init: Box<ThreadInit>) -> io::Result<Thread> {
        drop(init);
        Err(io::const_error!(
            io::ErrorKind::Unsupported,
            "threads are not supported on Xen yet: the kernel has no scheduler"
        ))
    }

    pub fn join(self) {
        self.0
    }
}

pub fn available_parallelism() -> io::Result<NonZero<usize>> {
    NonZero::new(abi::xk_cpu_count()).ok_or(io::Error::UNKNOWN_THREAD_COUNT)
}

pub fn yield_now() {}

pub fn sleep(dur: Duration) {
    match Instant::now().checked_add(dur) {
        Some(deadline) => abi::xk_sleep_until(deadline.into_inner().as_kernel_nanos()),
        None => loop {
            abi::xk_sleep_until(u64::MAX);
        },
    }
}

