//! Xen-specific extensions: byte-string `OsStr`s, and the Xen services a program can use
//! directly (xenstore, event channels, the domain's identity and lifecycle, raw network frames, the sectors of virtual disks).
//!
//! The work is done by the kernel linked into every image; these modules are thin, safe
//! wrappers over its calls (the project's `docs/abi.md`), returning `io::Error`s with the
//! `ErrorKind`s a Linux program would see.

#![stable(feature = "rust1", since = "1.0.0")]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod blk;
pub mod domain;
pub mod evtchn;
pub mod ffi;
pub mod net;
pub mod xenstore;

/// A prelude for conveniently writing platform-specific code.
#[stable(feature = "rust1", since = "1.0.0")]
pub mod prelude {
    #[doc(no_inline)]
    #[stable(feature = "rust1", since = "1.0.0")]
    pub use super::ffi::{OsStrExt, OsStringExt};
}

/// Xen system time `timeout` from now, as the kernel's deadlines are given (`u64::MAX` for
/// none).
fn deadline(timeout: Option<crate::time::Duration>) -> u64 {
    match timeout {
        None => u64::MAX,
        Some(t) => crate::sys::abi::xk_monotonic_ns()
            .saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// `-errno` from the kernel as an `io::Error`.
fn error(code: i64) -> crate::io::Error {
    crate::io::Error::from_raw_os_error(code.unsigned_abs().min(i32::MAX as u64) as i32)
}
