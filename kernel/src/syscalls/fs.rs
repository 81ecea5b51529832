//! The `xk_fs_*` functions: files for std (`docs/abi.md`, "Files"; `docs/fs.md`).
//!
//! Every pointer and length from the program is checked before use ([`user`],
//! [`user_mut`]): not null unless empty, no wrap-around, inside the program's memory (the image
//! and the direct map). Handles are small integers from [`Tree::open`]; a bad one is `-EBADF`.

use alloc::vec::Vec;

use crate::fs::errno::Errno;
use crate::fs::tree::{Stat, Tree, Whence};
use crate::mm::layout::VIRT_BASE;

/// The most bytes one read or write moves, as Linux's `MAX_RW_COUNT`.
const MAX_RW: usize = 0x7fff_f000;

/// What `xk_fs_stat` and `xk_fs_fstat` fill in.
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
const _: () = assert!(size_of::<XkStat>() == 48);

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
/// Directory entry types of `xk_fs_read_dir`, Linux's `DT_DIR` and `DT_REG`.
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;

/// Whether `ptr..ptr + len` lies in the program's memory.
///
/// FIXME: a range inside that span can still cover an unmapped page (a stack's guard page, a
/// region not mapped yet); the copy then faults and the guest crashes instead of getting
/// `-EFAULT`. Checking each page against the page tables would retire this.
fn in_memory(ptr: usize, len: usize) -> bool {
    len == 0
        || (ptr as u64 >= VIRT_BASE && ptr.checked_add(len).is_some_and(|end| end as u64 <= crate::boot::memory_end()))
}

/// The program's bytes at `ptr`, checked.
///
/// # Safety
///
/// If the range passes the checks, it must be valid for reads for the call's duration (the
/// ABI's rule for every buffer std passes).
pub(crate) unsafe fn user<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Errno> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || !in_memory(ptr as usize, len) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: checked above; the caller vouches for the contents.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// The program's buffer at `ptr`, checked.
///
/// # Safety
///
/// As for [`user`], for writes.
pub(crate) unsafe fn user_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], Errno> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() || !in_memory(ptr as usize, len) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: checked above; the caller vouches for the buffer.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

fn handle(raw: u64) -> Result<usize, Errno> {
    usize::try_from(raw).map_err(|_| Errno::EBADF)
}

/// 0 or `-errno`, as the ABI returns them.
fn status(result: Result<(), Errno>) -> isize {
    result.err().map_or(0, Errno::negative)
}

fn count(result: Result<usize, Errno>) -> isize {
    result.map_or_else(Errno::negative, |n| n as isize)
}

fn stat_out(stat: Stat, out: *mut XkStat) -> Result<(), Errno> {
    if out.is_null() || !out.is_aligned() || !in_memory(out as usize, size_of::<XkStat>()) {
        return Err(Errno::EFAULT);
    }
    let value = XkStat {
        size: stat.size,
        ino: stat.ino as u64,
        modified_secs: stat.modified.secs,
        created_secs: stat.created.secs,
        modified_nanos: stat.modified.nanos,
        created_nanos: stat.created.nanos,
        mode: if stat.is_dir { S_IFDIR } else { S_IFREG } | stat.perm,
        reserved: 0,
    };
    // SAFETY: checked above: aligned, in the program's memory; std passes a live `XkStat`.
    unsafe { out.write(value) };
    Ok(())
}

/// Copies `bytes` to the program's `out` (up to `cap`) and returns their whole length.
///
/// # Safety
///
/// As for [`user_mut`].
unsafe fn give(bytes: &[u8], out: *mut u8, cap: usize) -> Result<usize, Errno> {
    let take = bytes.len().min(cap);
    // SAFETY: the caller's promise, passed on.
    let out = unsafe { user_mut(out, take)? };
    out.copy_from_slice(&bytes[..take]);
    Ok(bytes.len())
}

/// Runs `f` with the path at `ptr` on the filesystem.
///
/// # Safety
///
/// As for [`user`].
unsafe fn with_path<R>(ptr: *const u8, len: usize, f: impl FnOnce(&mut Tree, &[u8]) -> Result<R, Errno>) -> Result<R, Errno> {
    // SAFETY: the caller's promise, passed on.
    let path = unsafe { user(ptr, len)? };
    crate::fs::with(|tree| f(tree, path))
}

/// Opens `path` with Linux's `open` flags (`O_RDONLY`, `O_WRONLY`, `O_RDWR`, `O_CREAT`,
/// `O_EXCL`, `O_TRUNC`, `O_APPEND`, `O_DIRECTORY`); returns a handle or `-errno`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_open(path: *const u8, len: usize, flags: u32, mode: u32) -> i64 {
    let now = crate::fs::now();
    // SAFETY: the caller guarantees the path.
    match unsafe { with_path(path, len, |tree, path| tree.open(path, flags, mode, now)) } {
        Ok(handle) => handle as i64,
        Err(e) => e.negative() as i64,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_close(raw: u64) -> isize {
    status(handle(raw).and_then(|h| crate::fs::with(|tree| tree.close(h))))
}

/// Reads from the handle's position; returns the bytes read (0 at the end) or `-errno`.
///
/// # Safety
///
/// `buf` is valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_read(raw: u64, buf: *mut u8, len: usize) -> isize {
    // SAFETY: the caller guarantees the buffer.
    let buf = match unsafe { user_mut(buf, len.min(MAX_RW)) } {
        Ok(buf) => buf,
        Err(e) => return e.negative(),
    };
    count(handle(raw).and_then(|h| crate::fs::with(|tree| tree.read(h, buf))))
}

/// Writes at the handle's position (its end, when opened to append); returns the bytes
/// written or `-errno` (`-ENOSPC` when memory for files is out).
///
/// # Safety
///
/// `buf` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_write(raw: u64, buf: *const u8, len: usize) -> isize {
    // SAFETY: the caller guarantees the buffer.
    let buf = match unsafe { user(buf, len.min(MAX_RW)) } {
        Ok(buf) => buf,
        Err(e) => return e.negative(),
    };
    let now = crate::fs::now();
    count(handle(raw).and_then(|h| crate::fs::with(|tree| tree.write(h, buf, now))))
}

/// Moves the handle's position: `whence` 0 from the start, 1 from the current position, 2
/// from the end; returns the new position or `-errno`.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_seek(raw: u64, offset: i64, whence: u32) -> i64 {
    let whence = match whence {
        0 => Whence::Start,
        1 => Whence::Current,
        2 => Whence::End,
        _ => return Errno::EINVAL.negative() as i64,
    };
    match handle(raw).and_then(|h| crate::fs::with(|tree| tree.seek(h, offset, whence))) {
        Ok(pos) => pos as i64,
        Err(e) => e.negative() as i64,
    }
}

/// Fills `out` with what the handle's node is.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_fstat(raw: u64, out: *mut XkStat) -> isize {
    status(handle(raw).and_then(|h| crate::fs::with(|tree| tree.fstat(h))).and_then(|s| stat_out(s, out)))
}

/// Fills `out` with what `path` is.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_stat(path: *const u8, len: usize, out: *mut XkStat) -> isize {
    // SAFETY: the caller guarantees the path.
    status(unsafe { with_path(path, len, |tree, path| tree.stat(path)) }.and_then(|s| stat_out(s, out)))
}

/// Cuts or extends the handle's file to `size` bytes.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_set_len(raw: u64, size: u64) -> isize {
    let now = crate::fs::now();
    status(handle(raw).and_then(|h| crate::fs::with(|tree| tree.set_len(h, size, now))))
}

/// Sets the permission bits of `path`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_set_perm(path: *const u8, len: usize, perm: u32) -> isize {
    // SAFETY: the caller guarantees the path.
    status(unsafe { with_path(path, len, |tree, path| tree.set_perm(path, perm)) })
}

/// Sets the permission bits of the handle's node.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_fset_perm(raw: u64, perm: u32) -> isize {
    status(handle(raw).and_then(|h| crate::fs::with(|tree| tree.set_perm_of(h, perm))))
}

/// Creates the directory `path` with permission bits `mode` (less the umask, 022).
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_mkdir(path: *const u8, len: usize, mode: u32) -> isize {
    let now = crate::fs::now();
    // SAFETY: the caller guarantees the path.
    status(unsafe { with_path(path, len, |tree, path| tree.mkdir(path, mode, now)) })
}

/// Removes the empty directory `path`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_rmdir(path: *const u8, len: usize) -> isize {
    let now = crate::fs::now();
    // SAFETY: the caller guarantees the path.
    status(unsafe { with_path(path, len, |tree, path| tree.rmdir(path, now)) })
}

/// Removes the file `path`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_unlink(path: *const u8, len: usize) -> isize {
    let now = crate::fs::now();
    // SAFETY: the caller guarantees the path.
    status(unsafe { with_path(path, len, |tree, path| tree.unlink(path, now)) })
}

/// Renames `old` to `new`, replacing what `new` names, as `rename(2)`.
///
/// # Safety
///
/// Each path is valid for reads of its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_rename(old: *const u8, old_len: usize, new: *const u8, new_len: usize) -> isize {
    let now = crate::fs::now();
    // SAFETY: the caller guarantees `new`.
    let new = match unsafe { user(new, new_len) } {
        Ok(new) => new,
        Err(e) => return e.negative(),
    };
    // SAFETY: the caller guarantees `old`.
    status(unsafe { with_path(old, old_len, |tree, old| tree.rename(old, new, now)) })
}

/// Lists directory `path`: for each entry, in byte order of names, a type byte (`DT_DIR` 4
/// or `DT_REG` 8), the name and a NUL. Copies up to `cap` bytes to `out` and returns the
/// listing's whole length, or `-errno`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes, `out` for writes of `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_read_dir(path: *const u8, len: usize, out: *mut u8, cap: usize) -> isize {
    // SAFETY: the caller guarantees the path.
    let listing = unsafe {
        with_path(path, len, |tree, path| {
            let mut listing = Vec::new();
            for (name, is_dir) in tree.read_dir(path)? {
                listing.try_reserve(name.len() + 2).map_err(|_| Errno::ENOSPC)?;
                listing.push(if is_dir { DT_DIR } else { DT_REG });
                listing.extend_from_slice(name);
                listing.push(0);
            }
            Ok(listing)
        })
    };
    // SAFETY: the caller guarantees `out`.
    count(listing.and_then(|listing| unsafe { give(&listing, out, cap) }))
}

/// Copies the current directory's absolute path to `out` (up to `cap` bytes); returns its
/// whole length, or `-ENOENT` once the directory was removed.
///
/// # Safety
///
/// `out` is valid for writes of `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_getcwd(out: *mut u8, cap: usize) -> isize {
    let mut path = Vec::new();
    // SAFETY: the caller guarantees `out`.
    count(crate::fs::with(|tree| tree.cwd(&mut path)).and_then(|()| unsafe { give(&path, out, cap) }))
}

/// Makes directory `path` the current one.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_chdir(path: *const u8, len: usize) -> isize {
    // SAFETY: the caller guarantees the path.
    status(unsafe { with_path(path, len, |tree, path| tree.chdir(path)) })
}

/// Copies the absolute path of what `path` names, with no `.`, `..` or repeated slashes, to
/// `out` (up to `cap` bytes); returns its whole length or `-errno`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes, `out` for writes of `cap` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_canonicalize(path: *const u8, len: usize, out: *mut u8, cap: usize) -> isize {
    let mut canonical = Vec::new();
    // SAFETY: the caller guarantees the path.
    let found = unsafe { with_path(path, len, |tree, path| tree.canonicalize(path, &mut canonical)) };
    // SAFETY: the caller guarantees `out`.
    count(found.and_then(|()| unsafe { give(&canonical, out, cap) }))
}
