//! Command-line arguments on Xen: the kernel parses the guest's command line (`docs/abi.md`).

pub use super::common::Args;
use crate::ffi::OsString;
use crate::os::xen::ffi::OsStringExt;
use crate::sys::pal::abi;

/// Returns the program's arguments, `argv[0]` first.
pub fn args() -> Args {
    let mut args = Vec::new();
    for index in 0.. {
        let mut len = 0;
        // SAFETY: `len` is valid for a write.
        let ptr = unsafe { abi::xk_arg(index, &mut len) };
        if ptr.is_null() {
            break;
        }
        // SAFETY: the kernel keeps the argument, `len` bytes at `ptr`, for the program's lifetime.
        let bytes = unsafe { crate::slice::from_raw_parts(ptr, len) };
        args.push(OsString::from_vec(bytes.to_vec()));
    }
    Args::new(args)
}
