//! The std-kernel ABI of `docs/abi.md`: the `xk_*` functions, the kernel's only global symbols
//! besides `_start`.

use crate::xen::abi::errno;
use crate::xen::console;

pub mod blk;
pub mod fs;
pub mod net;
pub mod sock;

/// The version of this ABI; std checks that it matches its own.
pub const XK_ABI_VERSION: u32 = 9;

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

/// Reads stdin: console input, waiting until some comes; 0 at its end.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_console_read(buf: *mut u8, len: usize) -> isize {
    if buf.is_null() || len == 0 {
        return 0;
    }
    // SAFETY: the caller guarantees the buffer.
    console::read_input(unsafe { core::slice::from_raw_parts_mut(buf, len) })
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

/// Bytes of memory the guest has (its frames).
#[unsafe(no_mangle)]
pub extern "C" fn xk_memory_total() -> u64 {
    crate::mm::frame_counts().0 as u64 * 4096
}

/// Bytes of the guest's memory in use: every frame the kernel has handed out or keeps.
#[unsafe(no_mangle)]
pub extern "C" fn xk_memory_used() -> u64 {
    crate::mm::frame_counts().1 as u64 * 4096
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_pages_free(ptr: *mut u8, bytes: usize) {
    if bytes % 4096 != 0 || !crate::mm::free_frames(ptr, bytes / 4096) {
        error!("bad free of {bytes} bytes at {ptr:p}: ignored");
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_exit(status: i32) -> ! {
    crate::lifecycle::end_program(status, crate::xen::abi::ShutdownReason::Poweroff)
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_abort() -> ! {
    // What write() returned on mounted disks reaches them, where that is safe (see there).
    crate::fs::sync_mounts_at_abort();
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
    let (s, n) = crate::time::wallclock();
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

/// # Safety
///
/// `ptr` is null with `len` 0, or valid for reads of `len` bytes.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees it.
    Some(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Copies `reply` into `out` (up to `cap` bytes) and returns its whole length, so that a
/// caller with too small a buffer can tell.
///
/// # Safety
///
/// `out` is valid for writes of `cap` bytes.
unsafe fn give(reply: &[u8], out: *mut u8, cap: usize) -> isize {
    let take = reply.len().min(cap);
    if take > 0 {
        // SAFETY: the caller guarantees `out`; `take <= cap`.
        unsafe { core::ptr::copy_nonoverlapping(reply.as_ptr(), out, take) };
    }
    reply.len() as isize
}

/// Sends a xenstore request of type `kind` (`XS_*`, those a program may send) in transaction
/// `tx`, with the payload `first NUL` and, when `second_len` is not `usize::MAX`, `second`
/// (no NUL added: a value, or NUL-separated permissions); waits for the reply until
/// `deadline_ns` and copies it to `out`. Returns the reply's length or `-errno`.
///
/// # Safety
///
/// Each pointer is valid for its length (`second` is ignored when `second_len` is
/// `usize::MAX`), `out` for writes of `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_xenstore_request(
    kind: u32,
    tx: u32,
    first: *const u8,
    first_len: usize,
    second: *const u8,
    second_len: usize,
    out: *mut u8,
    cap: usize,
    deadline_ns: u64,
) -> isize {
    use crate::xen::xenstore::wire::{self, MsgType};
    let Some(kind) = MsgType::from_request(kind) else { return -errno::EINVAL };
    // SAFETY: the caller guarantees the buffers.
    let Some(first) = (unsafe { bytes(first, first_len) }) else { return -errno::EINVAL };
    let has_path = !matches!(kind, MsgType::TransactionStart | MsgType::TransactionEnd | MsgType::GetDomainPath);
    if has_path && wire::check_path(first).is_err() {
        return -errno::EINVAL;
    }
    let second = if second_len == usize::MAX {
        None
    } else {
        // SAFETY: as above.
        match unsafe { bytes(second, second_len) } {
            Some(b) => Some(b),
            None => return -errno::EINVAL,
        }
    };
    let mut parts: [(&[u8], bool); 2] = [(first, true), (&[], false)];
    let count = if let Some(second) = second {
        parts[1] = (second, false);
        2
    } else {
        1
    };
    match crate::xen::xenstore::request(kind, tx, &parts[..count], deadline_ns) {
        // SAFETY: the caller guarantees `out`.
        Ok(reply) => unsafe { give(&reply, out, cap) },
        Err(e) => e,
    }
}

/// Watches `path` in xenstore; returns the watch's id (positive) or `-errno`.
///
/// # Safety
///
/// `path` is valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_xenstore_watch(path: *const u8, len: usize, deadline_ns: u64) -> i64 {
    // SAFETY: the caller guarantees the path.
    let Some(path) = (unsafe { bytes(path, len) }) else { return -errno::EINVAL as i64 };
    match crate::xen::xenstore::watch(path, deadline_ns) {
        Ok(id) => id as i64,
        Err(e) => e as i64,
    }
}

/// Waits for watch `id`'s next event; copies the changed path to `out` and returns its
/// length, or `-errno` (`-ETIMEDOUT` at the deadline).
///
/// # Safety
///
/// `out` is valid for writes of `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_xenstore_watch_next(id: u64, out: *mut u8, cap: usize, deadline_ns: u64) -> isize {
    match crate::xen::xenstore::next_event(id, deadline_ns) {
        // SAFETY: the caller guarantees `out`.
        Ok(path) => unsafe { give(&path, out, cap) },
        Err(e) => e,
    }
}

/// Ends watch `id`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_xenstore_unwatch(id: u64, deadline_ns: u64) -> isize {
    status(crate::xen::xenstore::unwatch(id, deadline_ns))
}

use crate::xen::evtchn::{self, Owner};

/// 0 for success, `-errno` for failure, as the ABI returns them.
fn status(result: Result<(), isize>) -> isize {
    result.err().unwrap_or(0)
}

fn own(port: u32) -> Result<(), isize> {
    if evtchn::owner(port) == Owner::Program { Ok(()) } else { Err(-errno::EBADF) }
}

fn port_result(result: Result<u32, isize>) -> i64 {
    match result {
        Ok(port) => port as i64,
        Err(e) => e as i64,
    }
}

/// Allocates an event channel port that domain `remote_dom` may bind; returns it or `-errno`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_evtchn_alloc_unbound(remote_dom: u32) -> i64 {
    let Ok(remote) = u16::try_from(remote_dom) else { return -errno::EINVAL as i64 };
    port_result(evtchn::alloc_unbound(remote, Owner::Program))
}

/// Binds a local port to `remote_port` of domain `remote_dom`; returns it or `-errno`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_evtchn_bind_interdomain(remote_dom: u32, remote_port: u32) -> i64 {
    let Ok(remote) = u16::try_from(remote_dom) else { return -errno::EINVAL as i64 };
    port_result(evtchn::bind_interdomain(remote, remote_port, Owner::Program))
}

/// Signals the other end of the program's port `port`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_evtchn_notify(port: u32) -> isize {
    status(own(port).and_then(|()| evtchn::notify(port)))
}

/// Waits until the program's port `port` has had an event since its count was `seen`;
/// returns the new count or `-errno` (`-ETIMEDOUT` at the deadline, `-EBADF` once closed).
#[unsafe(no_mangle)]
pub extern "C" fn xk_evtchn_wait(port: u32, seen: u32, deadline_ns: u64) -> i64 {
    if let Err(e) = own(port) {
        return e as i64;
    }
    let result = evtchn::wait(port, seen, deadline_ns);
    if own(port).is_err() {
        return -errno::EBADF as i64;
    }
    port_result(result)
}

/// Masks (`masked` 1) or unmasks (0) the program's port `port`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_evtchn_set_mask(port: u32, masked: u32) -> isize {
    status(own(port).and_then(|()| if masked != 0 { evtchn::mask(port) } else { evtchn::unmask(port) }))
}

/// Closes the program's port `port`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_evtchn_close(port: u32) -> isize {
    status(own(port).and_then(|()| evtchn::close(port)))
}

/// From now on the toolstack's shutdown and reboot requests go to the program
/// (`xk_shutdown_next`) instead of ending it.
#[unsafe(no_mangle)]
pub extern "C" fn xk_shutdown_subscribe() -> isize {
    if !crate::xen::xenstore::available() {
        return -crate::xen::xenstore::ENODEV;
    }
    crate::lifecycle::subscribe();
    0
}

/// Waits for the next request: 0 poweroff, 1 reboot, or `-ETIMEDOUT`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_shutdown_next(deadline_ns: u64) -> isize {
    match crate::lifecycle::next(deadline_ns) {
        Ok(request) => request as isize,
        Err(e) => e,
    }
}

/// Ends the program with `status` and asks Xen to reboot the domain.
#[unsafe(no_mangle)]
pub extern "C" fn xk_exit_reboot(status: i32) -> ! {
    crate::lifecycle::end_program(status, crate::xen::abi::ShutdownReason::Reboot)
}

