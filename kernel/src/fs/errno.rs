//! The errors of the filesystem, as Linux's `errno` values (`asm-generic/errno-base.h` and
//! `errno.h`), so that std reports the `io::ErrorKind` a Linux program would see.

/// An `errno` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Errno {
    /// No such file or directory.
    ENOENT = 2,
    /// Input/output error: the disk failed, or the filesystem on it is corrupt.
    EIO = 5,
    /// Bad file descriptor: a handle that is not open, or not open for this.
    EBADF = 9,
    /// Bad address: a pointer from the program outside its memory.
    EFAULT = 14,
    /// Device or resource busy: the root cannot be removed or renamed.
    EBUSY = 16,
    /// File exists.
    EEXIST = 17,
    /// Cross-device link: a rename from one mount to another.
    EXDEV = 18,
    /// No such device: the disk named by a mount is not there.
    ENODEV = 19,
    /// Not a directory.
    ENOTDIR = 20,
    /// Is a directory.
    EISDIR = 21,
    /// Invalid argument.
    EINVAL = 22,
    /// Too many open files.
    EMFILE = 24,
    /// File too large.
    EFBIG = 27,
    /// No space left on device: memory for file contents is out.
    ENOSPC = 28,
    /// Read-only file system: a write to a disk attached or mounted read-only.
    EROFS = 30,
    /// File name too long.
    ENAMETOOLONG = 36,
    /// Directory not empty.
    ENOTEMPTY = 39,
    /// Stale file handle: a handle on a FAT file that was removed or replaced after it was
    /// opened (`docs/fs.md`).
    ESTALE = 116,
}

impl Errno {
    /// The value as the ABI returns it: negative.
    pub fn negative(self) -> isize {
        -(self as i32 as isize)
    }
}
