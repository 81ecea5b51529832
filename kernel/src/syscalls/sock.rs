//! The `xk_sock_*` functions: TCP and UDP sockets over the kernel's IP stack for std's
//! `std::net` (`docs/abi.md`, "Sockets"; `docs/net.md`).
//!
//! A socket's handle is a small number; errors are `-errno` as Linux gives them. Every call
//! that may wait takes a deadline in Xen system time: `u64::MAX` waits for ever, a passed one
//! (0) does not wait (`-EAGAIN`, or `-ETIMEDOUT` for connect).

use super::fs::{user, user_mut};
use crate::net::stack::{self, XkSockAddr};

const EFAULT: isize = -14;

/// Reads a socket address from the program.
///
/// # Safety
///
/// `ptr` is valid for reads of an `XkSockAddr` when not null.
unsafe fn addr_in(ptr: *const XkSockAddr) -> Result<XkSockAddr, isize> {
    // SAFETY: the caller vouches for the pointer; the range is checked.
    let bytes = unsafe { user(ptr as *const u8, size_of::<XkSockAddr>()) }.map_err(|_| EFAULT)?;
    if bytes.is_empty() {
        return Err(EFAULT);
    }
    // SAFETY: the range holds an `XkSockAddr` (plain integers, any bits valid); unaligned read.
    Ok(unsafe { (bytes.as_ptr() as *const XkSockAddr).read_unaligned() })
}

/// Writes a socket address to the program (a null pointer is skipped).
///
/// # Safety
///
/// `ptr` is valid for writes of an `XkSockAddr` when not null.
unsafe fn addr_out(ptr: *mut XkSockAddr, addr: XkSockAddr) -> Result<(), isize> {
    if ptr.is_null() {
        return Ok(());
    }
    // SAFETY: the caller vouches for the pointer; the range is checked.
    let out = unsafe { user_mut(ptr as *mut u8, size_of::<XkSockAddr>()) }.map_err(|_| EFAULT)?;
    // SAFETY: `out` is the checked range of one `XkSockAddr`; unaligned write.
    unsafe { (out.as_mut_ptr() as *mut XkSockAddr).write_unaligned(addr) };
    Ok(())
}

fn ret<T: Into<i64>>(r: Result<T, i32>) -> i64 {
    match r {
        Ok(v) => v.into(),
        Err(e) => -(e as i64),
    }
}

fn retn(r: Result<usize, i32>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => -(e as isize),
    }
}

/// Connects a TCP socket to `addr`, waiting until `deadline_ns`; returns its handle.
///
/// # Safety
///
/// `addr` is valid for reads of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_tcp_connect(addr: *const XkSockAddr, deadline_ns: u64) -> i64 {
    // SAFETY: the caller vouches for `addr`.
    let addr = match unsafe { addr_in(addr) } {
        Ok(a) => a,
        Err(e) => return e as i64,
    };
    ret(stack::tcp_connect(&addr, deadline_ns))
}

/// Binds a TCP listener to `addr` (port 0: an ephemeral one); returns its handle.
///
/// # Safety
///
/// `addr` is valid for reads of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_tcp_listen(addr: *const XkSockAddr, backlog: u32) -> i64 {
    // SAFETY: the caller vouches for `addr`.
    let addr = match unsafe { addr_in(addr) } {
        Ok(a) => a,
        Err(e) => return e as i64,
    };
    ret(stack::tcp_listen(&addr, backlog))
}

/// Takes an established connection from listener `handle`; writes the peer to `peer`.
///
/// # Safety
///
/// `peer` is null or valid for writes of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_tcp_accept(handle: u64, peer: *mut XkSockAddr, deadline_ns: u64) -> i64 {
    match stack::tcp_accept(handle, deadline_ns) {
        Ok((h, addr)) => {
            // SAFETY: the caller vouches for `peer`.
            if let Err(e) = unsafe { addr_out(peer, addr) } {
                stack::close(h as u64, true);
                return e as i64;
            }
            h
        }
        Err(e) => -(e as i64),
    }
}

/// Reads from TCP connection `handle` (flags bit 0: peek); 0 at the end of the stream.
///
/// # Safety
///
/// `buf` is valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_recv(handle: u64, buf: *mut u8, len: usize, flags: u32, deadline_ns: u64) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let Ok(buf) = (unsafe { user_mut(buf, len) }) else { return EFAULT };
    retn(stack::tcp_recv(handle, buf, flags & 1 != 0, deadline_ns))
}

/// Writes to TCP connection `handle` or a connected UDP socket; returns the bytes taken.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_send(handle: u64, buf: *const u8, len: usize, deadline_ns: u64) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let Ok(data) = (unsafe { user(buf, len) }) else { return EFAULT };
    match stack::tcp_send(handle, data, deadline_ns) {
        Err(stack::errno::EOPNOTSUPP) => retn(stack::udp_send(handle, data, None, deadline_ns)),
        r => retn(r),
    }
}

/// Shuts down reading (0), writing (1) or both (2).
#[unsafe(no_mangle)]
pub extern "C" fn xk_sock_shutdown(handle: u64, how: u32) -> isize {
    retn(stack::shutdown(handle, how).map(|()| 0))
}

/// Another holder of socket `handle` (the same handle back; the socket closes when every
/// holder closed it).
#[unsafe(no_mangle)]
pub extern "C" fn xk_sock_dup(handle: u64) -> i64 {
    ret(stack::dup(handle))
}

/// Closes socket `handle`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_sock_close(handle: u64) -> isize {
    stack::close(handle, false) as isize
}

/// Writes the local (`which` 0) or peer (1) address of `handle` to `out`.
///
/// # Safety
///
/// `out` is valid for writes of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_addr(handle: u64, which: u32, out: *mut XkSockAddr) -> isize {
    if out.is_null() {
        return EFAULT;
    }
    match stack::addr(handle, which == 1) {
        // SAFETY: the caller vouches for `out`.
        Ok(a) => match unsafe { addr_out(out, a) } {
            Ok(()) => 0,
            Err(e) => e,
        },
        Err(e) => -(e as isize),
    }
}

/// Sets option `opt` (1 no-delay, 2 TTL, 4 linger: 0 off, else seconds + 1) of `handle`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_sock_set_opt(handle: u64, opt: u32, value: u64) -> isize {
    retn(stack::set_opt(handle, opt, value).map(|()| 0))
}

/// Reads option `opt` (1 no-delay, 2 TTL, 3 the pending error, taken, 4 linger as set) of `handle`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_sock_get_opt(handle: u64, opt: u32) -> i64 {
    match stack::get_opt(handle, opt) {
        Ok(v) => v as i64,
        Err(e) => -(e as i64),
    }
}

/// Binds a UDP socket to `addr`; returns its handle.
///
/// # Safety
///
/// `addr` is valid for reads of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_udp_bind(addr: *const XkSockAddr) -> i64 {
    // SAFETY: the caller vouches for `addr`.
    let addr = match unsafe { addr_in(addr) } {
        Ok(a) => a,
        Err(e) => return e as i64,
    };
    ret(stack::udp_bind(&addr))
}

/// Gives UDP socket `handle` a peer: `send` goes there, `recv` takes only its datagrams.
///
/// # Safety
///
/// `addr` is valid for reads of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_udp_connect(handle: u64, addr: *const XkSockAddr) -> isize {
    // SAFETY: the caller vouches for `addr`.
    let addr = match unsafe { addr_in(addr) } {
        Ok(a) => a,
        Err(e) => return e,
    };
    retn(stack::udp_connect(handle, &addr).map(|()| 0))
}

/// Sends one datagram to `addr`.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes, `addr` for reads of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_udp_send_to(
    handle: u64,
    buf: *const u8,
    len: usize,
    addr: *const XkSockAddr,
    deadline_ns: u64,
) -> isize {
    // SAFETY: the caller vouches for both.
    let (data, to) = match (unsafe { user(buf, len) }, unsafe { addr_in(addr) }) {
        (Ok(d), Ok(a)) => (d, a),
        _ => return EFAULT,
    };
    retn(stack::udp_send(handle, data, Some(&to), deadline_ns))
}

/// Takes (flags bit 0: peeks at) the next datagram, cut to `len`; writes its sender to `from`.
///
/// # Safety
///
/// `buf` is valid for writes of `len` bytes, `from` null or for writes of an `XkSockAddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_udp_recv_from(
    handle: u64,
    buf: *mut u8,
    len: usize,
    flags: u32,
    from: *mut XkSockAddr,
    deadline_ns: u64,
) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let Ok(buf) = (unsafe { user_mut(buf, len) }) else { return EFAULT };
    match stack::udp_recv(handle, buf, flags & 1 != 0, deadline_ns) {
        // SAFETY: the caller vouches for `from`.
        Ok((n, addr)) => match unsafe { addr_out(from, addr) } {
            Ok(()) => n as isize,
            Err(e) => e,
        },
        Err(e) => -(e as isize),
    }
}

/// Resolves host name `name` (`localhost`, or through DNS); writes up to `cap` addresses
/// (port 0) to `out` and returns how many; `-ENOENT` when the name is unknown.
///
/// # Safety
///
/// `name` is valid for reads of `len` bytes, `out` for writes of `cap` `XkSockAddr`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_sock_lookup(
    name: *const u8,
    len: usize,
    out: *mut XkSockAddr,
    cap: usize,
    deadline_ns: u64,
) -> isize {
    // SAFETY: the caller vouches for `name`; the range is checked.
    let Ok(name) = (unsafe { user(name, len) }) else { return EFAULT };
    let Some(bytes) = cap.checked_mul(size_of::<XkSockAddr>()) else { return EFAULT };
    // SAFETY: the caller vouches for `out`; the range is checked.
    let Ok(raw) = (unsafe { user_mut(out as *mut u8, bytes) }) else { return EFAULT };
    let mut found = [XkSockAddr::default(); 8];
    let n = cap.min(found.len());
    match stack::lookup(name, &mut found[..n], deadline_ns) {
        Ok(k) => {
            for (i, a) in found[..k].iter().enumerate() {
                // SAFETY: `raw` holds `cap` >= k entries; unaligned write.
                unsafe { (raw.as_mut_ptr() as *mut XkSockAddr).add(i).write_unaligned(*a) };
            }
            k as isize
        }
        Err(e) => -(e as isize),
    }
}
