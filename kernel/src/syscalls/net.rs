//! The `xk_net_*` functions: raw Ethernet frames on the guest's vifs for std's
//! `std::os::xen::net` (`docs/abi.md`, "Network devices"; `docs/net.md`).
//!
//! A device's handle is its vif index (`device/vif/N`); pointers are checked as for files.

use super::fs::{user, user_mut};
use crate::net::netfront;

fn efault<T>(_: T) -> isize {
    -14
}

/// Opens and connects vif `index`; writes its MAC address (6 bytes) to `mac` and returns the
/// handle (the index), or `-errno`.
///
/// # Safety
///
/// `mac` is valid for writes of 6 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_net_open(index: u32, mac: *mut u8) -> i64 {
    // SAFETY: the caller vouches for `mac`; the range is checked.
    let out = match unsafe { user_mut(mac, 6) } {
        Ok(out) => out,
        Err(e) => return efault(e) as i64,
    };
    match netfront::open(index) {
        Ok(address) => {
            out.copy_from_slice(&address);
            index as i64
        }
        Err(e) => e.errno() as i64,
    }
}

/// Waits (until `deadline_ns`) for a frame on device `handle`, copies up to `cap` bytes of it
/// to `buf` and returns how many, or `-errno`.
///
/// # Safety
///
/// `buf` is valid for writes of `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_net_recv(handle: u64, buf: *mut u8, cap: usize, deadline_ns: u64) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let buf = match unsafe { user_mut(buf, cap) } {
        Ok(buf) => buf,
        Err(e) => return efault(e),
    };
    let Ok(index) = u32::try_from(handle) else { return -9 };
    match netfront::recv(index, buf, deadline_ns) {
        Ok(n) => n as isize,
        Err(e) => e.errno(),
    }
}

/// Sends the `len`-byte Ethernet frame at `buf` on device `handle`, waiting (until
/// `deadline_ns`) for a free tx buffer; returns `len` or `-errno`.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_net_send(handle: u64, buf: *const u8, len: usize, deadline_ns: u64) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let frame = match unsafe { user(buf, len) } {
        Ok(frame) => frame,
        Err(e) => return efault(e),
    };
    let Ok(index) = u32::try_from(handle) else { return -9 };
    match netfront::send(index, frame, deadline_ns) {
        Ok(n) => n as isize,
        Err(e) => e.errno(),
    }
}

/// The MTU of open device `handle` (its xenstore `mtu` key, 1,500 without one), or `-EBADF`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_net_mtu(handle: u64) -> isize {
    let Ok(index) = u32::try_from(handle) else { return -9 };
    netfront::mtu(index).map_or(-9, |mtu| mtu as isize)
}

/// Disconnects and closes device `handle`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_net_close(handle: u64) -> isize {
    let Ok(index) = u32::try_from(handle) else { return -9 };
    match netfront::close(index) {
        Ok(()) => 0,
        Err(e) => e.errno(),
    }
}
