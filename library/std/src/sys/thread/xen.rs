//! Threads on Xen: kernel threads, preemptive on Xen's timer.
//!
//! FIXME: the kernel schedules every thread on vCPU 0 for now, so `available_parallelism`
//! is 1 whatever the guest's vCPU count.

use crate::ffi::CStr;
use crate::io;
use crate::num::NonZero;
use crate::sys::pal::abi;
use crate::thread::ThreadInit;
use crate::time::{Duration, Instant};

pub struct Thread {
    handle: u64,
}

// SAFETY: the handle is an opaque token the kernel accepts from any thread.
unsafe impl Send for Thread {}
// SAFETY: as above.
unsafe impl Sync for Thread {}

pub const DEFAULT_MIN_STACK_SIZE: usize = 256 * 1024;

impl Thread {
    // unsafe: see thread::Builder::spawn_unchecked for safety requirements
    pub unsafe fn new(stack: usize, init: Box<ThreadInit>) -> io::Result<Thread> {
        let data = Box::into_raw(init);
        // SAFETY: `thread_start` takes ownership of `data` when the thread runs.
        let handle = unsafe { abi::xk_thread_spawn(thread_start, data.cast(), stack) };
        if handle == 0 {
            // SAFETY: the thread was not created, so `data` is still ours.
            drop(unsafe { Box::from_raw(data) });
            return Err(io::const_error!(io::ErrorKind::OutOfMemory, "no memory for a new thread"));
        }
        return Ok(Thread { handle });

        extern "C" fn thread_start(data: *mut u8) {
            // SAFETY: `data` is the box leaked by `new`, handed over exactly once.
            let init = unsafe { Box::from_raw(data.cast::<ThreadInit>()) };
            let rust_start = init.init();
            rust_start();
            // SAFETY: the thread's Rust code is done; its thread-locals may go.
            unsafe { crate::sys::thread_local::destructors::run() };
            crate::rt::thread_cleanup();
        }
    }

    pub fn join(self) {
        let handle = self.handle;
        crate::mem::forget(self);
        // SAFETY: the handle is live and joined once (`self` is consumed).
        unsafe { abi::xk_thread_join(handle) };
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: a dropped, unjoined thread is detached once.
        unsafe { abi::xk_thread_detach(self.handle) };
    }
}

pub fn available_parallelism() -> io::Result<NonZero<usize>> {
    NonZero::new(abi::xk_cpu_count()).ok_or(io::Error::UNKNOWN_THREAD_COUNT)
}

pub fn current_os_id() -> Option<u64> {
    Some(abi::xk_thread_id())
}

/// Tells the kernel the running thread's name, which the runner uses to report a stack
/// overflow as Linux does ("thread 'NAME' has overflowed its stack").
pub fn set_name(name: &CStr) {
    let name = name.to_bytes();
    // SAFETY: `name` is valid for reads of its length.
    unsafe { abi::xk_thread_set_name(name.as_ptr(), name.len()) };
}

pub fn yield_now() {
    abi::xk_thread_yield();
}

pub fn sleep(dur: Duration) {
    match Instant::now().checked_add(dur) {
        Some(deadline) => abi::xk_sleep_until(deadline.into_inner().as_kernel_nanos()),
        None => loop {
            abi::xk_sleep_until(u64::MAX);
        },
    }
}
