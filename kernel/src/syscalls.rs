//! The std-kernel ABI of `docs/abi.md`: the `xk_*` functions, the kernel's only global symbols
//! besides `_start`.

use crate::xen::abi::errno;
use crate::xen::console;

/// The version of this ABI; std checks that it matches its own.
pub const XK_ABI_VERSION: u32 = 2;

#[unsafe(no_mangle)]
pub extern "C" fn xk_abi_version() -> u32 {
    XK_ABI_VERSION
}

/// # Safety
///
/// `buf` must be valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_console_write(stream: u32, buf: *const u8, len: usize) -> isize {
    if buf.is_null() && len != 0 {
        return -errno::EINVAL;
    }
    // SAFETY: the caller guarantees the buffer.
    let bytes = if len == 0 { &[][..] } else { unsafe { core::slice::from_raw_parts(buf, len) } };
    console::write_stream(stream, bytes)
}

/// Reads stdin.
///
/// FIXME: console input is not wired up yet (it comes with the PV console's input ring), so
/// stdin is always at its end.
#[unsafe(no_mangle)]
pub extern "C" fn xk_console_read(_buf: *mut u8, _len: usize) -> isize {
    0
}

fn hand_out(item: Option<&'static [u8]>, len: *mut usize) -> *const u8 {
    match item {
        Some(bytes) => {
            if !len.is_null() {
                // SAFETY: a non-null `len` is valid for a write, as the ABI requires.
                unsafe { len.write(bytes.len()) };
            }
            bytes.as_ptr()
        }
        None => core::ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_arg(index: usize, len: *mut usize) -> *const u8 {
    hand_out(crate::boot::cmdline().arg(index), len)
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_env(index: usize, len: *mut usize) -> *const u8 {
    hand_out(crate::boot::cmdline().env(index), len)
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_pages_alloc(bytes: usize) -> *mut u8 {
    if bytes == 0 || bytes % 4096 != 0 {
        return core::ptr::null_mut();
    }
    match crate::mm::alloc_frames(bytes / 4096) {
        Some(ptr) => ptr,
        None => {
            debug!("out of memory: {} KiB asked, {} KiB free", bytes >> 10, crate::mm::free_frame_count() * 4);
            core::ptr::null_mut()
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_pages_free(ptr: *mut u8, bytes: usize) {
    if bytes % 4096 != 0 || !crate::mm::free_frames(ptr, bytes / 4096) {
        error!("bad free of {bytes} bytes at {ptr:p}: ignored");
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_exit(status: i32) -> ! {
    crate::exit(status)
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_abort() -> ! {
    crate::abort()
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_monotonic_ns() -> u64 {
    crate::time::monotonic_ns()
}

/// # Safety
///
/// Both pointers must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_wallclock(secs: *mut i64, nanos: *mut u32) {
    let (base_secs, base_nanos) = crate::arch::x86_64::wallclock_base();
    let ns = base_secs as u128 * 1_000_000_000 + base_nanos as u128 + crate::time::monotonic_ns() as u128;
    let (s, n) = crate::time::split_ns(ns);
    // SAFETY: the caller guarantees both pointers.
    unsafe {
        secs.write(s);
        nanos.write(n);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_sleep_until(deadline_ns: u64) {
    if crate::sched::started() {
        return crate::sched::sleep_until(deadline_ns);
    }
    loop {
        let now = crate::time::monotonic_ns();
        if now >= deadline_ns {
            return;
        }
        // No ports: only the timeout (or a stray wake-up, after which time is checked again)
        // ends the poll. u64::MAX means forever, which SCHEDOP_poll spells 0.
        let timeout = if deadline_ns == u64::MAX { 0 } else { deadline_ns };
        crate::xen::hypercall::poll(&[], timeout);
    }
}

/// # Safety
///
/// `buf` must be valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_random_fill(buf: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the caller guarantees the buffer.
    crate::random::fill(unsafe { core::slice::from_raw_parts_mut(buf, len) });
}

/// vCPUs the program's threads run on.
#[unsafe(no_mangle)]
pub extern "C" fn xk_cpu_count() -> usize {
    crate::arch::x86_64::percpu::online()
}

/// Creates a thread running `entry(arg)` with a stack of at least `stack_bytes`; returns its
/// handle, or 0 when memory ran out.
#[unsafe(no_mangle)]
pub extern "C" fn xk_thread_spawn(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize) -> u64 {
    crate::sched::spawn(entry, arg, stack_bytes).map_or(0, |thread| thread as u64)
}

/// # Safety
///
/// `handle` comes from `xk_thread_spawn` and was neither joined nor detached.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_thread_join(handle: u64) {
    // SAFETY: the caller guarantees the handle.
    unsafe { crate::sched::join(handle as *mut _) }
}

/// # Safety
///
/// As for `xk_thread_join`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_thread_detach(handle: u64) {
    // SAFETY: the caller guarantees the handle.
    unsafe { crate::sched::detach(handle as *mut _) }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_thread_yield() {
    crate::sched::yield_now();
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_thread_id() -> u64 {
    crate::sched::current_id()
}

/// Waits while `*addr == expected`, until woken or `deadline_ns` (u64::MAX: none); returns 0
/// when woken, `-ETIMEDOUT`, or `-EAGAIN` when the value differed.
///
/// # Safety
///
/// `addr` is valid for atomic reads of a `u32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_futex_wait(addr: *const u32, expected: u32, deadline_ns: u64) -> isize {
    if addr.is_null() || !addr.is_aligned() {
        return -errno::EINVAL;
    }
    // SAFETY: the caller guarantees `addr`.
    match unsafe { crate::sched::futex_wait(addr, expected, deadline_ns) } {
        crate::sched::FutexWait::Woken => 0,
        crate::sched::FutexWait::TimedOut => -errno::ETIMEDOUT,
        crate::sched::FutexWait::Changed => -errno::EAGAIN,
    }
}

/// Wakes up to `count` threads waiting on `addr`; returns how many.
#[unsafe(no_mangle)]
pub extern "C" fn xk_futex_wake(addr: *const u32, count: u32) -> u32 {
    crate::sched::futex_wake(addr, count)
}

/// Names the running thread (for stack overflow reports; std keeps names itself).
///
/// # Safety
///
/// `name` must be valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_thread_set_name(name: *const u8, len: usize) {
    if name.is_null() {
        return;
    }
    // SAFETY: the caller guarantees the bytes.
    let name = unsafe { core::slice::from_raw_parts(name, len) };
    let (id, guard) = crate::sched::current_id_and_guard();
    console::thread_record(id, guard, name);
}
