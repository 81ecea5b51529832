//! Files on Xen: the kernel's in-memory filesystem (the packed files at `/` under a writable
//! overlay), reached through the `xk_fs_*` functions of the project's `docs/abi.md`.
//!
//! This module only translates: every decision (path lookup, errors, memory) is the
//! kernel's, and its errors are Linux's `errno` values.

use crate::ffi::OsString;
use crate::fmt;
use crate::fs::TryLockError;
use crate::hash::{Hash, Hasher};
use crate::io::{self, BorrowedCursor, IoSlice, IoSliceMut, SeekFrom};
use crate::os::xen::ffi::OsStringExt;
use crate::path::{Path, PathBuf};
use crate::sys::pal::abi::{self, XkStat};
use crate::sys::pal::{cvt, unsupported, unsupported_err};
use crate::sys::time::SystemTime;

pub use crate::sys::fs::common::{Dir, copy, exists, remove_dir_all};

/// `open` flags: Linux's values, as the kernel takes them.
const O_RDONLY: u32 = 0o0;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const DT_DIR: u8 = 4;

fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// Turns a kernel return value into a result (negative values are `-errno`).
fn cvt64(ret: i64) -> io::Result<u64> {
    if ret < 0 { Err(io::Error::from_raw_os_error(-ret as i32)) } else { Ok(ret as u64) }
}

/// Calls `fill(buf, cap)`, which returns the whole length of what it would copy, with a
/// buffer that grows until everything fits.
fn read_sized(mut fill: impl FnMut(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    loop {
        let len = cvt(fill(buf.as_mut_ptr(), buf.capacity()))?;
        if len <= buf.capacity() {
            // SAFETY: the kernel wrote `len` bytes to the buffer.
            unsafe { buf.set_len(len) };
            return Ok(buf);
        }
        buf.reserve(len);
    }
}

/// A handle to an open file or directory, closed on drop.
pub struct File(u64);

#[derive(Clone)]
pub struct FileAttr(XkStat);

pub struct ReadDir {
    root: PathBuf,
    listing: Vec<u8>,
    at: usize,
}

pub struct DirEntry {
    root: PathBuf,
    name: OsString,
    is_dir: bool,
}

#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
}

#[derive(Copy, Clone, Debug, Default)]
pub struct FileTimes {}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FilePermissions {
    mode: u32,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct FileType {
    is_dir: bool,
}

impl Hash for FileType {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.is_dir.hash(h)
    }
}

#[derive(Debug)]
pub struct DirBuilder {
    mode: u32,
}

impl FileAttr {
    pub fn size(&self) -> u64 {
        self.0.size
    }

    pub fn perm(&self) -> FilePermissions {
        FilePermissions { mode: self.0.mode & 0o7777 }
    }

    pub fn file_type(&self) -> FileType {
        FileType { is_dir: self.0.mode & S_IFMT == S_IFDIR }
    }

    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(SystemTime::from_unix(self.0.modified_secs, self.0.modified_nanos))
    }

    pub fn accessed(&self) -> io::Result<SystemTime> {
        // FIXME: the kernel keeps no access times (files live in memory, nothing needs them
        // yet); a field in `XkStat` would add them.
        unsupported()
    }

    pub fn created(&self) -> io::Result<SystemTime> {
        Ok(SystemTime::from_unix(self.0.created_secs, self.0.created_nanos))
    }
}

impl FilePermissions {
    pub fn readonly(&self) -> bool {
        self.mode & 0o222 == 0
    }

    pub fn set_readonly(&mut self, readonly: bool) {
        if readonly { self.mode &= !0o222 } else { self.mode |= 0o222 }
    }
}

impl FileTimes {
    pub fn set_accessed(&mut self, _t: SystemTime) {}
    pub fn set_modified(&mut self, _t: SystemTime) {}
}

impl FileType {
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    pub fn is_file(&self) -> bool {
        !self.is_dir
    }

    pub fn is_symlink(&self) -> bool {
        false
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.root, f)
    }
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        // Each entry: a type byte, the name, a NUL (`xk_fs_read_dir`).
        let rest = self.listing.get(self.at..).filter(|r| r.len() >= 2)?;
        let end = rest.iter().skip(1).position(|&b| b == 0).map_or(rest.len(), |p| p + 1);
        self.at += end + 1;
        Some(Ok(DirEntry {
            root: self.root.clone(),
            name: OsString::from_vec(rest[1..end].to_vec()),
            is_dir: rest[0] == DT_DIR,
        }))
    }
}

impl DirEntry {
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    pub fn file_name(&self) -> OsString {
        self.name.clone()
    }

    pub fn metadata(&self) -> io::Result<FileAttr> {
        stat(&self.path())
    }

    pub fn file_type(&self) -> io::Result<FileType> {
        Ok(FileType { is_dir: self.is_dir })
    }
}

impl OpenOptions {
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
        }
    }

    pub fn read(&mut self, read: bool) {
        self.read = read;
    }
    pub fn write(&mut self, write: bool) {
        self.write = write;
    }
    pub fn append(&mut self, append: bool) {
        self.append = append;
    }
    pub fn truncate(&mut self, truncate: bool) {
        self.truncate = truncate;
    }
    pub fn create(&mut self, create: bool) {
        self.create = create;
    }
    pub fn create_new(&mut self, create_new: bool) {
        self.create_new = create_new;
    }

    /// The `open` flags, refusing the combinations (with the messages) Unix's std refuses.
    fn flags(&self) -> io::Result<u32> {
        const NO_ACCESS: &str = "must specify at least one of read, write, or append access";
        const CREATE: &str = "creating or truncating a file requires write or append access";
        let invalid = |why: &'static str| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => O_RDONLY,
            (false, true, false) => O_WRONLY,
            (true, true, false) => O_RDWR,
            (false, _, true) => O_WRONLY | O_APPEND,
            (true, _, true) => O_RDWR | O_APPEND,
            (false, false, false) if self.create || self.create_new || self.truncate => {
                return invalid(CREATE);
            }
            (false, false, false) => return invalid(NO_ACCESS),
        };
        match (self.write, self.append) {
            (false, false) if self.truncate || self.create || self.create_new => {
                return invalid(CREATE);
            }
            (_, true) if self.truncate && !self.create_new => return invalid(CREATE),
            _ => {}
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => O_CREAT,
            (false, true, false) => O_TRUNC,
            (true, true, false) => O_CREAT | O_TRUNC,
            (_, _, true) => O_CREAT | O_EXCL,
        };
        Ok(access | creation)
    }
}

impl File {
    pub fn open(path: &Path, opts: &OpenOptions) -> io::Result<File> {
        let flags = opts.flags()?;
        let path = path_bytes(path);
        // SAFETY: the path is valid for its length.
        let handle = unsafe { abi::xk_fs_open(path.as_ptr(), path.len(), flags, 0o666) };
        cvt64(handle).map(File)
    }

    pub fn file_attr(&self) -> io::Result<FileAttr> {
        let mut attr = XkStat::default();
        // SAFETY: `attr` is valid for a write.
        cvt(unsafe { abi::xk_fs_fstat(self.0, &mut attr) })?;
        Ok(FileAttr(attr))
    }

    pub fn fsync(&self) -> io::Result<()> {
        // A file on a mounted disk is written back and the disk flushed; one in memory has
        // nothing to write.
        cvt(abi::xk_fs_sync(self.0)).map(drop)
    }

    pub fn datasync(&self) -> io::Result<()> {
        // FAT keeps no metadata apart from the data that could be left out.
        self.fsync()
    }

    pub fn lock(&self) -> io::Result<()> {
        unsupported()
    }

    pub fn lock_shared(&self) -> io::Result<()> {
        unsupported()
    }

    pub fn try_lock(&self) -> Result<(), TryLockError> {
        Err(TryLockError::Error(unsupported_err()))
    }

    pub fn try_lock_shared(&self) -> Result<(), TryLockError> {
        Err(TryLockError::Error(unsupported_err()))
    }

    pub fn unlock(&self) -> io::Result<()> {
        unsupported()
    }

    pub fn truncate(&self, size: u64) -> io::Result<()> {
        cvt(abi::xk_fs_set_len(self.0, size)).map(drop)
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for writes of its length.
        cvt(unsafe { abi::xk_fs_read(self.0, buf.as_mut_ptr(), buf.len()) })
    }

    pub fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        io::default_read_vectored(|b| self.read(b), bufs)
    }

    pub fn is_read_vectored(&self) -> bool {
        false
    }

    pub fn read_buf(&self, mut cursor: BorrowedCursor<'_>) -> io::Result<()> {
        // SAFETY: the kernel only writes to the buffer, never reads it.
        let buf = unsafe { cursor.as_mut() };
        // SAFETY: the buffer is valid for writes of its length.
        let read = cvt(unsafe { abi::xk_fs_read(self.0, buf.as_mut_ptr().cast(), buf.len()) })?;
        // SAFETY: the kernel filled `read` bytes.
        unsafe { cursor.advance(read) };
        Ok(())
    }

    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for reads of its length.
        cvt(unsafe { abi::xk_fs_write(self.0, buf.as_ptr(), buf.len()) })
    }

    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        io::default_write_vectored(|b| self.write(b), bufs)
    }

    pub fn is_write_vectored(&self) -> bool {
        false
    }

    pub fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    pub fn seek(&self, pos: SeekFrom) -> io::Result<u64> {
        let (offset, whence) = match pos {
            SeekFrom::Start(offset) => {
                (i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(22))?, 0)
            }
            SeekFrom::Current(offset) => (offset, 1),
            SeekFrom::End(offset) => (offset, 2),
        };
        cvt64(abi::xk_fs_seek(self.0, offset, whence))
    }

    pub fn size(&self) -> Option<io::Result<u64>> {
        Some(self.file_attr().map(|attr| attr.size()))
    }

    pub fn tell(&self) -> io::Result<u64> {
        self.seek(SeekFrom::Current(0))
    }

    pub fn duplicate(&self) -> io::Result<File> {
        // FIXME: a second handle sharing this one's position needs shared open-file records in
        // the kernel; `try_clone` is refused until then.
        unsupported()
    }

    pub fn set_permissions(&self, perm: FilePermissions) -> io::Result<()> {
        cvt(abi::xk_fs_fset_perm(self.0, perm.mode)).map(drop)
    }

    pub fn set_times(&self, _times: FileTimes) -> io::Result<()> {
        // FIXME: modification times are the kernel's to set (on every write); setting them
        // needs an `xk_fs_set_times`.
        unsupported()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = abi::xk_fs_close(self.0);
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("handle", &self.0).finish()
    }
}

impl DirBuilder {
    pub fn new() -> DirBuilder {
        DirBuilder { mode: 0o777 }
    }

    pub fn mkdir(&self, path: &Path) -> io::Result<()> {
        let path = path_bytes(path);
        // SAFETY: the path is valid for its length.
        cvt(unsafe { abi::xk_fs_mkdir(path.as_ptr(), path.len(), self.mode) }).map(drop)
    }
}

/// Calls the kernel with one path.
fn with_path(path: &Path, call: unsafe extern "C" fn(*const u8, usize) -> isize) -> io::Result<()> {
    let path = path_bytes(path);
    // SAFETY: the path is valid for its length.
    cvt(unsafe { call(path.as_ptr(), path.len()) }).map(drop)
}

pub fn readdir(path: &Path) -> io::Result<ReadDir> {
    let bytes = path_bytes(path);
    let listing = read_sized(|out, cap| {
        // SAFETY: the path is valid for its length, `out` for writes of `cap` bytes.
        unsafe { abi::xk_fs_read_dir(bytes.as_ptr(), bytes.len(), out, cap) }
    })?;
    Ok(ReadDir { root: path.to_path_buf(), listing, at: 0 })
}

pub fn unlink(path: &Path) -> io::Result<()> {
    with_path(path, abi::xk_fs_unlink)
}

pub fn rename(old: &Path, new: &Path) -> io::Result<()> {
    let (old, new) = (path_bytes(old), path_bytes(new));
    // SAFETY: both paths are valid for their lengths.
    cvt(unsafe { abi::xk_fs_rename(old.as_ptr(), old.len(), new.as_ptr(), new.len()) }).map(drop)
}

pub fn set_perm(path: &Path, perm: FilePermissions) -> io::Result<()> {
    let path = path_bytes(path);
    // SAFETY: the path is valid for its length.
    cvt(unsafe { abi::xk_fs_set_perm(path.as_ptr(), path.len(), perm.mode) }).map(drop)
}

pub fn set_times(_p: &Path, _times: FileTimes) -> io::Result<()> {
    unsupported()
}

pub fn set_times_nofollow(_p: &Path, _times: FileTimes) -> io::Result<()> {
    unsupported()
}

pub fn rmdir(path: &Path) -> io::Result<()> {
    with_path(path, abi::xk_fs_rmdir)
}

pub fn readlink(path: &Path) -> io::Result<PathBuf> {
    // There are no symbolic links: as Linux says of anything else that exists.
    stat(path)?;
    Err(io::Error::from_raw_os_error(22))
}

pub fn symlink(_original: &Path, _link: &Path) -> io::Result<()> {
    unsupported()
}

pub fn link(_src: &Path, _dst: &Path) -> io::Result<()> {
    unsupported()
}

pub fn stat(path: &Path) -> io::Result<FileAttr> {
    let path = path_bytes(path);
    let mut attr = XkStat::default();
    // SAFETY: the path is valid for its length, `attr` for a write.
    cvt(unsafe { abi::xk_fs_stat(path.as_ptr(), path.len(), &mut attr) })?;
    Ok(FileAttr(attr))
}

pub fn lstat(path: &Path) -> io::Result<FileAttr> {
    stat(path)
}

pub fn canonicalize(path: &Path) -> io::Result<PathBuf> {
    let bytes = path_bytes(path);
    let canonical = read_sized(|out, cap| {
        // SAFETY: the path is valid for its length, `out` for writes of `cap` bytes.
        unsafe { abi::xk_fs_canonicalize(bytes.as_ptr(), bytes.len(), out, cap) }
    })?;
    Ok(PathBuf::from(OsString::from_vec(canonical)))
}
