//! The `xk_fs_*` functions: files for std (`docs/abi.md`, "Files"; `docs/fs.md`).
//!
//! Every pointer and length from the program is checked before use ([`user`],
//! [`user_mut`]): not null unless empty, no wrap-around, inside the program's memory (the image
//! and the direct map). Handles are small integers from [`Tree::open`], or, for files on a
//! mounted disk ([`crate::fs::route`]), [`MOUNT_HANDLES`] plus the mount's index and the
//! volume's handle; a bad one is `-EBADF`.

use alloc::vec::Vec;

use crate::fs::errno::Errno;
use crate::fs::fat::FatFs;
use crate::fs::tree::{Stat, Tree, Whence};
use crate::fs::{Route, route, with_mount};
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

/// Handles of files on mounted disks start here: `MOUNT_HANDLES | index << 24 | handle`.
const MOUNT_HANDLES: u64 = 1 << 32;

fn handle(raw: u64) -> Result<usize, Errno> {
    usize::try_from(raw).map_err(|_| Errno::EBADF)
}

fn mount_handle(index: usize, slot: usize) -> i64 {
    (MOUNT_HANDLES | (index as u64) << 24 | slot as u64) as i64
}

/// Runs `tree` on the tree's handle `raw`, or `mount` on the volume and handle `raw` names.
fn on_handle<R>(
    raw: u64,
    tree: impl FnOnce(&mut Tree, usize) -> Result<R, Errno>,
    mount: impl FnOnce(&mut FatFs, usize) -> Result<R, Errno>,
) -> Result<R, Errno> {
    if raw >= MOUNT_HANDLES {
        let index = ((raw >> 24) & 0xff) as usize;
        if raw >> 32 != 1 {
            return Err(Errno::EBADF);
        }
        return with_mount(index, |fs| mount(fs, (raw & 0xff_ffff) as usize));
    }
    let h = handle(raw)?;
    crate::fs::with(|t| tree(t, h))
}

/// Where a path from the program goes.
enum Target<'a> {
    Tree(&'a [u8]),
    /// A mount's index, the path inside it, whether it asked for a directory.
    Mount(usize, Vec<u8>, bool),
}

/// The program's path at `ptr`, checked and routed.
///
/// # Safety
///
/// As for [`user`].
unsafe fn target<'a>(ptr: *const u8, len: usize) -> Result<Target<'a>, Errno> {
    // SAFETY: the caller's promise, passed on.
    let path = unsafe { user(ptr, len)? };
    Ok(match route(path) {
        Route::Tree => Target::Tree(path),
        Route::Mount(index, inner, wants_dir) => Target::Mount(index, inner, wants_dir),
    })
}

/// Runs `tree` on the tree with the path at `ptr`, or `mount` on the volume it falls in.
///
/// # Safety
///
/// As for [`user`].
unsafe fn on_path<R>(
    ptr: *const u8,
    len: usize,
    tree: impl FnOnce(&mut Tree, &[u8]) -> Result<R, Errno>,
    mount: impl FnOnce(&mut FatFs, &[u8], bool) -> Result<R, Errno>,
) -> Result<R, Errno> {
    // SAFETY: the caller's promise, passed on.
    match unsafe { target(ptr, len)? } {
        Target::Tree(path) => crate::fs::with(|t| tree(t, path)),
        Target::Mount(index, inner, wants_dir) => with_mount(index, |fs| mount(fs, &inner, wants_dir)),
    }
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
    let opened = match unsafe { target(path, len) } {
        Ok(Target::Tree(path)) => crate::fs::with(|tree| tree.open(path, flags, mode, now)).map(|h| h as i64),
        Ok(Target::Mount(index, inner, wants_dir)) => {
            with_mount(index, |fs| fs.open(&inner, wants_dir, flags)).map(|slot| mount_handle(index, slot))
        }
        Err(e) => Err(e),
    };
    opened.unwrap_or_else(|e| e.negative() as i64)
}

/// Writes the handle's changes to its disk and flushes it (`fsync`); 0 or `-errno`. Files of
/// the in-memory tree have nothing to write.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_sync(raw: u64) -> isize {
    status(on_handle(raw, |tree, h| tree.fstat(h).map(drop), |fs, h| fs.sync(h)))
}

#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_close(raw: u64) -> isize {
    status(on_handle(raw, |tree, h| tree.close(h), |fs, h| fs.close(h)))
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
    let read = if raw >= MOUNT_HANDLES {
        on_handle(raw, |_, _| Err(Errno::EBADF), |fs, h| fs.read(h, buf))
    } else {
        handle(raw).and_then(|h| crate::fs::with(|tree| tree.read(h, buf)))
    };
    count(read)
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
    count(on_handle(raw, |tree, h| tree.write(h, buf, now), |fs, h| fs.write(h, buf)))
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
    match on_handle(raw, |tree, h| tree.seek(h, offset, whence), |fs, h| fs.seek(h, offset, whence)) {
        Ok(pos) => pos as i64,
        Err(e) => e.negative() as i64,
    }
}

/// Fills `out` with what the handle's node is.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_fstat(raw: u64, out: *mut XkStat) -> isize {
    status(on_handle(raw, |tree, h| tree.fstat(h), |fs, h| fs.fstat(h)).and_then(|s| stat_out(s, out)))
}

/// Fills `out` with what `path` is.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_stat(path: *const u8, len: usize, out: *mut XkStat) -> isize {
    // SAFETY: the caller guarantees the path.
    status(unsafe { on_path(path, len, |tree, path| tree.stat(path), |fs, path, d| fs.stat(path, d)) }.and_then(|s| stat_out(s, out)))
}

/// Cuts or extends the handle's file to `size` bytes.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_set_len(raw: u64, size: u64) -> isize {
    let now = crate::fs::now();
    status(on_handle(raw, |tree, h| tree.set_len(h, size, now), |fs, h| fs.set_len(h, size)))
}

/// Sets the permission bits of `path`.
///
/// # Safety
///
/// `path` is valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_set_perm(path: *const u8, len: usize, perm: u32) -> isize {
    // SAFETY: the caller guarantees the path.
    status(unsafe { on_path(path, len, |tree, path| tree.set_perm(path, perm), |fs, path, d| fs.set_perm(path, d)) })
}

/// Sets the permission bits of the handle's node.
#[unsafe(no_mangle)]
pub extern "C" fn xk_fs_fset_perm(raw: u64, perm: u32) -> isize {
    status(on_handle(raw, |tree, h| tree.set_perm_of(h, perm), |fs, h| fs.fstat(h).map(drop)))
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
    status(unsafe { on_path(path, len, |tree, path| tree.mkdir(path, mode, now), |fs, path, _| fs.mkdir(path)) })
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
    status(unsafe { on_path(path, len, |tree, path| tree.rmdir(path, now), |fs, path, _| fs.remove(path, true)) })
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
    status(unsafe { on_path(path, len, |tree, path| tree.unlink(path, now), |fs, path, _| fs.remove(path, false)) })
}

/// Renames `old` to `new`, replacing what `new` names, as `rename(2)`.
///
/// # Safety
///
/// Each path is valid for reads of its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xk_fs_rename(old: *const u8, old_len: usize, new: *const u8, new_len: usize) -> isize {
    let now = crate::fs::now();
    // SAFETY: the caller guarantees both paths.
    let targets = unsafe { target(old, old_len).and_then(|old| Ok((old, target(new, new_len)?))) };
    status(targets.and_then(|targets| match targets {
        (Target::Tree(old), Target::Tree(new)) => crate::fs::with(|tree| tree.rename(old, new, now)),
        (Target::Mount(a, old, _), Target::Mount(b, new, new_dir)) if a == b => {
            with_mount(a, |fs| fs.rename(&old, &new, new_dir))
        }
        // As Linux: a rename cannot move a file from one filesystem to another.
        _ => Err(Errno::EXDEV),
    }))
}

/// Adds one entry to a listing of `xk_fs_read_dir`.
fn list(listing: &mut Vec<u8>, name: &[u8], is_dir: bool) -> Result<(), Errno> {
    listing.try_reserve(name.len() + 2).map_err(|_| Errno::ENOSPC)?;
    listing.push(if is_dir { DT_DIR } else { DT_REG });
    listing.extend_from_slice(name);
    listing.push(0);
    Ok(())
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
        on_path(
            path,
            len,
            |tree, path| {
                let mut listing = Vec::new();
                for (name, is_dir) in tree.read_dir(path)? {
                    list(&mut listing, name, is_dir)?;
                }
                Ok(listing)
            },
            |fs, path, _| {
                let mut listing = Vec::new();
                for (name, is_dir) in fs.read_dir(path)? {
                    list(&mut listing, name.as_bytes(), is_dir)?;
                }
                Ok(listing)
            },
        )
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
    let found = unsafe {
        match target(path, len) {
            Ok(Target::Tree(path)) => crate::fs::with(|tree| tree.canonicalize(path, &mut canonical)),
            Ok(Target::Mount(index, inner, wants_dir)) => with_mount(index, |fs| fs.stat(&inner, wants_dir)).map(|_| {
                canonical = crate::fs::mount_point(index);
                if !inner.is_empty() {
                    canonical.push(b'/');
                    canonical.extend_from_slice(&inner);
                }
            }),
            Err(e) => Err(e),
        }
    };
    // SAFETY: the caller guarantees `out`.
    count(found.and_then(|()| unsafe { give(&canonical, out, cap) }))
}
