//! The kernel's functions, as declared in the project's `docs/abi.md`.
//!
//! The kernel object linked into every image defines these symbols and no other global ones.
//! Pointers passed in must be valid for the stated lengths; the kernel never keeps them.

use crate::ffi::c_int;

/// The ABI version this std was written against; the kernel's must be equal.
pub const XK_ABI_VERSION: u32 = 9;

/// The console stream that carries stdout.
pub const STREAM_STDOUT: u32 = 1;
/// The console stream that carries stderr.
pub const STREAM_STDERR: u32 = 2;

/// What `xk_fs_stat` and `xk_fs_fstat` fill in.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct XkStat {
    pub size: u64,
    pub ino: u64,
    pub modified_secs: i64,
    pub created_secs: i64,
    pub modified_nanos: u32,
    pub created_nanos: u32,
    /// `S_IFDIR` or `S_IFREG` and the permission bits, as Linux's `st_mode`.
    pub mode: u32,
    pub reserved: u32,
}

/// A socket address as `xk_sock_*` pass it: family 4 or 6, the port, and the address (IPv4
/// in the first 4 bytes).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct XkSockAddr {
    pub family: u16,
    pub port: u16,
    pub flowinfo: u32,
    pub addr: [u8; 16],
    pub scope_id: u32,
}

/// What `xk_blk_open` fills in (`docs/abi.md`, "Block devices").
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XkBlkInfo {
    /// The disk's size in 512-byte units.
    pub sectors: u64,
    /// The logical sector size.
    pub sector_size: u32,
    /// `BLK_READ_ONLY`, `BLK_FLUSH`.
    pub flags: u32,
}

/// `XkBlkInfo::flags`: writes are refused.
pub const BLK_READ_ONLY: u32 = 1;
/// `XkBlkInfo::flags`: the backend offers a cache flush or barrier.
pub const BLK_FLUSH: u32 = 2;

unsafe extern "C" {
    pub safe fn xk_abi_version() -> u32;
    pub fn xk_console_write(stream: u32, buf: *const u8, len: usize) -> isize;
    pub fn xk_console_read(buf: *mut u8, len: usize) -> isize;
    pub fn xk_arg(index: usize, len: *mut usize) -> *const u8;
    pub fn xk_env(index: usize, len: *mut usize) -> *const u8;
    pub fn xk_pages_alloc(bytes: usize) -> *mut u8;
    pub fn xk_pages_free(ptr: *mut u8, bytes: usize);
    pub safe fn xk_memory_total() -> u64;
    pub safe fn xk_memory_used() -> u64;
    pub fn xk_exit(status: c_int) -> !;
    pub fn xk_abort() -> !;
    pub safe fn xk_monotonic_ns() -> u64;
    pub fn xk_wallclock(secs: *mut i64, nanos: *mut u32);
    pub safe fn xk_sleep_until(deadline_ns: u64);
    pub fn xk_random_fill(buf: *mut u8, len: usize);
    pub safe fn xk_cpu_count() -> usize;
    pub fn xk_thread_spawn(entry: extern "C" fn(*mut u8), arg: *mut u8, stack: usize) -> u64;
    pub fn xk_thread_join(handle: u64);
    pub fn xk_thread_detach(handle: u64);
    pub safe fn xk_thread_yield();
    pub safe fn xk_thread_id() -> u64;
    pub fn xk_futex_wait(addr: *const u32, expected: u32, deadline_ns: u64) -> isize;
    pub fn xk_futex_wake(addr: *const u32, count: u32) -> u32;
    pub fn xk_thread_set_name(name: *const u8, len: usize);
    pub fn xk_xenstore_request(
        kind: u32,
        tx: u32,
        first: *const u8,
        first_len: usize,
        second: *const u8,
        second_len: usize,
        out: *mut u8,
        cap: usize,
        deadline_ns: u64,
    ) -> isize;
    pub fn xk_xenstore_watch(path: *const u8, len: usize, deadline_ns: u64) -> i64;
    pub fn xk_xenstore_watch_next(id: u64, out: *mut u8, cap: usize, deadline_ns: u64) -> isize;
    pub safe fn xk_xenstore_unwatch(id: u64, deadline_ns: u64) -> isize;
    pub safe fn xk_evtchn_alloc_unbound(remote_dom: u32) -> i64;
    pub safe fn xk_evtchn_bind_interdomain(remote_dom: u32, remote_port: u32) -> i64;
    pub safe fn xk_evtchn_notify(port: u32) -> isize;
    pub safe fn xk_evtchn_wait(port: u32, seen: u32, deadline_ns: u64) -> i64;
    pub safe fn xk_evtchn_set_mask(port: u32, masked: u32) -> isize;
    pub safe fn xk_evtchn_close(port: u32) -> isize;
    pub safe fn xk_shutdown_subscribe() -> isize;
    pub safe fn xk_shutdown_next(deadline_ns: u64) -> isize;
    pub safe fn xk_exit_reboot(status: c_int) -> !;
    pub fn xk_fs_open(path: *const u8, len: usize, flags: u32, mode: u32) -> i64;
    pub safe fn xk_fs_close(handle: u64) -> isize;
    pub fn xk_fs_read(handle: u64, buf: *mut u8, len: usize) -> isize;
    pub fn xk_fs_write(handle: u64, buf: *const u8, len: usize) -> isize;
    pub safe fn xk_fs_seek(handle: u64, offset: i64, whence: u32) -> i64;
    pub fn xk_fs_fstat(handle: u64, out: *mut XkStat) -> isize;
    pub fn xk_fs_stat(path: *const u8, len: usize, out: *mut XkStat) -> isize;
    pub safe fn xk_fs_set_len(handle: u64, size: u64) -> isize;
    pub fn xk_fs_set_perm(path: *const u8, len: usize, perm: u32) -> isize;
    pub safe fn xk_fs_fset_perm(handle: u64, perm: u32) -> isize;
    pub fn xk_fs_mkdir(path: *const u8, len: usize, mode: u32) -> isize;
    pub fn xk_fs_rmdir(path: *const u8, len: usize) -> isize;
    pub fn xk_fs_unlink(path: *const u8, len: usize) -> isize;
    pub fn xk_fs_rename(old: *const u8, old_len: usize, new: *const u8, new_len: usize) -> isize;
    pub fn xk_fs_read_dir(path: *const u8, len: usize, out: *mut u8, cap: usize) -> isize;
    pub fn xk_fs_getcwd(out: *mut u8, cap: usize) -> isize;
    pub fn xk_fs_chdir(path: *const u8, len: usize) -> isize;
    pub fn xk_fs_canonicalize(path: *const u8, len: usize, out: *mut u8, cap: usize) -> isize;
    pub safe fn xk_fs_sync(handle: u64) -> isize;
    pub fn xk_net_open(index: u32, mac: *mut u8) -> i64;
    pub fn xk_net_recv(handle: u64, buf: *mut u8, cap: usize, deadline_ns: u64) -> isize;
    pub fn xk_net_send(handle: u64, buf: *const u8, len: usize, deadline_ns: u64) -> isize;
    pub safe fn xk_net_close(handle: u64) -> isize;
    pub safe fn xk_net_mtu(handle: u64) -> isize;
    pub fn xk_sock_tcp_connect(addr: *const XkSockAddr, deadline_ns: u64) -> i64;
    pub fn xk_sock_tcp_listen(addr: *const XkSockAddr, backlog: u32) -> i64;
    pub fn xk_sock_tcp_accept(handle: u64, peer: *mut XkSockAddr, deadline_ns: u64) -> i64;
    pub fn xk_sock_recv(handle: u64, buf: *mut u8, len: usize, flags: u32, deadline_ns: u64) -> isize;
    pub fn xk_sock_send(handle: u64, buf: *const u8, len: usize, deadline_ns: u64) -> isize;
    pub safe fn xk_sock_shutdown(handle: u64, how: u32) -> isize;
    pub safe fn xk_sock_close(handle: u64) -> isize;
    pub safe fn xk_sock_dup(handle: u64) -> i64;
    pub fn xk_sock_addr(handle: u64, which: u32, out: *mut XkSockAddr) -> isize;
    pub safe fn xk_sock_set_opt(handle: u64, opt: u32, value: u64) -> isize;
    pub safe fn xk_sock_get_opt(handle: u64, opt: u32) -> i64;
    pub fn xk_sock_udp_bind(addr: *const XkSockAddr) -> i64;
    pub fn xk_sock_udp_connect(handle: u64, addr: *const XkSockAddr) -> isize;
    pub fn xk_sock_udp_send_to(handle: u64, buf: *const u8, len: usize, addr: *const XkSockAddr, deadline_ns: u64) -> isize;
    pub fn xk_sock_udp_recv_from(
        handle: u64,
        buf: *mut u8,
        len: usize,
        flags: u32,
        from: *mut XkSockAddr,
        deadline_ns: u64,
    ) -> isize;
    pub fn xk_sock_lookup(name: *const u8, len: usize, out: *mut XkSockAddr, cap: usize, deadline_ns: u64) -> isize;
    pub fn xk_blk_open(name: *const u8, len: usize, read_only: u32, info: *mut XkBlkInfo) -> i64;
    pub fn xk_blk_read(handle: u64, offset: u64, buf: *mut u8, len: usize) -> isize;
    pub fn xk_blk_write(handle: u64, offset: u64, buf: *const u8, len: usize) -> isize;
    pub safe fn xk_blk_flush(handle: u64) -> isize;
    pub safe fn xk_blk_close(handle: u64) -> isize;
}

const _: () = assert!(size_of::<XkSockAddr>() == 28);
const _: () = assert!(size_of::<XkBlkInfo>() == 16);

const _: () = assert!(size_of::<XkStat>() == 48);

/// `-ETIMEDOUT`, as `xk_futex_wait` returns it.
pub const ETIMEDOUT: isize = 110;
