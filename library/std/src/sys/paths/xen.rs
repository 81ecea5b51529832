//! The current directory and the temporary directory on Xen: the kernel keeps the current
//! directory of its in-memory filesystem, and makes `/tmp` at boot (`docs/fs.md`).

use crate::ffi::OsString;
use crate::io;
use crate::os::xen::ffi::OsStringExt;
use crate::path::{Path, PathBuf};
use crate::sys::pal::{abi, cvt};

pub fn getcwd() -> io::Result<PathBuf> {
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    loop {
        // SAFETY: the buffer is valid for writes of its capacity.
        let len = cvt(unsafe { abi::xk_fs_getcwd(buf.as_mut_ptr(), buf.capacity()) })?;
        if len <= buf.capacity() {
            // SAFETY: the kernel wrote `len` bytes.
            unsafe { buf.set_len(len) };
            return Ok(PathBuf::from(OsString::from_vec(buf)));
        }
        buf.reserve(len);
    }
}

pub fn chdir(path: &Path) -> io::Result<()> {
    let path = path.as_os_str().as_encoded_bytes();
    // SAFETY: the path is valid for its length.
    cvt(unsafe { abi::xk_fs_chdir(path.as_ptr(), path.len()) }).map(drop)
}

pub fn temp_dir() -> PathBuf {
    PathBuf::from("/tmp")
}
