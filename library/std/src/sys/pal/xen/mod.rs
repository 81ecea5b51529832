//! The platform layer for Xen guests.
//!
//! On Xen, std runs on a library kernel linked into the same image. std reaches it only through
//! the `xk_*` functions declared in [`abi`] and documented in the project's `docs/abi.md`; each
//! feature module (`sys/<feature>/xen.rs`) calls them directly.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(missing_docs, nonstandard_style)]

pub mod abi;
pub mod futex;

use crate::io;

pub fn unsupported<T>() -> io::Result<T> {
    Err(unsupported_err())
}

pub fn unsupported_err() -> io::Error {
    io::const_error!(io::ErrorKind::Unsupported, "operation not supported on Xen yet")
}

pub fn abort_internal() -> ! {
    // SAFETY: `xk_abort` may be called at any time; it never returns.
    unsafe { abi::xk_abort() }
}

// SAFETY: must be called only once during runtime initialization.
// NOTE: this is not guaranteed to run, for example when Rust code is called externally.
pub unsafe fn init(_argc: isize, _argv: *const *const u8, _sigpipe: u8) {
    let kernel = abi::xk_abi_version();
    if kernel != abi::XK_ABI_VERSION {
        rtabort!(
            "the Xen kernel linked into this program speaks ABI {kernel}, its std expects {}; \
             rebuild the program with the xen toolchain it came from",
            abi::XK_ABI_VERSION
        );
    }
}

// SAFETY: must be called only once during runtime cleanup.
// NOTE: this is not guaranteed to run, for example when the program aborts.
pub unsafe fn cleanup() {}

/// Turns a kernel return value into an `io::Result`: negative values are `-errno`.
pub fn cvt(ret: isize) -> io::Result<usize> {
    if ret < 0 { Err(io::Error::from_raw_os_error(-ret as i32)) } else { Ok(ret as usize) }
}
