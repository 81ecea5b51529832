//! The `xk_blk_*` functions: the sectors of the guest's virtual disks for std's
//! `std::os::xen::blk` (`docs/abi.md`, "Block devices"; `docs/fs.md`, "Disks").
//!
//! A disk is named as in its xl configuration (`xvda`, ...); handles are small integers from
//! [`blkfront::open`]. Pointers are checked as for files.

use super::fs::{user, user_mut};
use crate::blk::{blkfront, ring};

/// What `xk_blk_open` fills in.
#[repr(C)]
pub struct XkBlkInfo {
    /// The disk's size in 512-byte units.
    pub sectors: u64,
    /// The logical sector size: offsets and lengths are multiples of it.
    pub sector_size: u32,
    /// [`BLK_READ_ONLY`], [`BLK_FLUSH`].
    pub flags: u32,
}
const _: () = assert!(size_of::<XkBlkInfo>() == 16);

/// Writes are refused.
pub const BLK_READ_ONLY: u32 = 1;
/// The backend offers a cache flush or barrier (`xk_blk_flush` sends one).
pub const BLK_FLUSH: u32 = 2;

fn efault<T>(_: T) -> isize {
    -14
}

fn handle(raw: u64) -> Result<u32, isize> {
    u32::try_from(raw).map_err(|_| -9)
}

/// Opens and connects the disk named `name` (`len` bytes, `xvdX`); `read_only` != 0 refuses
/// writes. Fills `info` and returns the handle, or `-errno`.
///
/// # Safety
///
/// `name` is valid for reads of `len` bytes and `info` for a write of an `XkBlkInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_blk_open(name: *const u8, len: usize, read_only: u32, info: *mut XkBlkInfo) -> i64 {
    // SAFETY: the caller vouches for `name`; the range is checked.
    let name = match unsafe { user(name, len) } {
        Ok(name) => name,
        Err(e) => return efault(e) as i64,
    };
    // SAFETY: as above, for `info`.
    let out = match unsafe { user_mut(info as *mut u8, size_of::<XkBlkInfo>()) } {
        Ok(out) => out,
        Err(e) => return efault(e) as i64,
    };
    let Some(id) = ring::vbd_id(name) else { return -19 };
    match blkfront::open(id, read_only != 0) {
        Ok((h, disk)) => {
            let mut flags = 0;
            if disk.readonly {
                flags |= BLK_READ_ONLY;
            }
            if disk.flush_op.is_some() {
                flags |= BLK_FLUSH;
            }
            let value = XkBlkInfo { sectors: disk.geometry.sectors, sector_size: disk.geometry.sector_size, flags };
            // SAFETY: `out` is `size_of::<XkBlkInfo>()` checked bytes; an unaligned write is
            // fine for any address.
            unsafe { core::ptr::write_unaligned(out.as_mut_ptr() as *mut XkBlkInfo, value) };
            h as i64
        }
        Err(e) => e.errno() as i64,
    }
}

/// Reads `len` bytes at byte `offset` of disk `handle` into `buf` (both multiples of the sector
/// size); 0 or `-errno`.
///
/// # Safety
///
/// `buf` is valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_blk_read(handle_: u64, offset: u64, buf: *mut u8, len: usize) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let buf = match unsafe { user_mut(buf, len) } {
        Ok(buf) => buf,
        Err(e) => return efault(e),
    };
    let h = match handle(handle_) {
        Ok(h) => h,
        Err(e) => return e,
    };
    blkfront::read(h, offset, buf).map_or_else(|e| e.errno(), |()| 0)
}

/// Writes `len` bytes from `buf` at byte `offset` of disk `handle` (both multiples of the
/// sector size); 0 or `-errno`.
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_blk_write(handle_: u64, offset: u64, buf: *const u8, len: usize) -> isize {
    // SAFETY: the caller vouches for `buf`; the range is checked.
    let data = match unsafe { user(buf, len) } {
        Ok(data) => data,
        Err(e) => return efault(e),
    };
    let h = match handle(handle_) {
        Ok(h) => h,
        Err(e) => return e,
    };
    blkfront::write(h, offset, data).map_or_else(|e| e.errno(), |()| 0)
}

/// Makes the completed writes of disk `handle` durable (a cache flush or barrier, if the
/// backend offers one); 0 or `-errno`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_blk_flush(handle_: u64) -> isize {
    match handle(handle_) {
        Ok(h) => blkfront::flush(h).map_or_else(|e| e.errno(), |()| 0),
        Err(e) => e,
    }
}

/// Disconnects and closes disk `handle`; 0 or `-EBADF`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_blk_close(handle_: u64) -> isize {
    match handle(handle_) {
        Ok(h) => blkfront::close(h).map_or_else(|e| e.errno(), |()| 0),
        Err(e) => e,
    }
}
