//! The library kernel of `x86_64-unknown-xen`: linked into every program's image, it boots as
//! a Xen PV guest, owns the guest's memory and devices, and serves std through the `xk_*`
//! functions of `docs/abi.md`.

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
// On the host only the pure logic is built, for its unit tests.
#![cfg_attr(not(target_os = "none"), allow(unused_macros, dead_code))]

extern crate alloc;

#[macro_use]
pub mod log;

pub mod blk;
pub mod cmdline;
pub mod framing;
pub mod fs;
pub mod mm;
pub mod net;
pub mod random;
pub mod sync;
pub mod time;
pub mod xen;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod backtrace;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod lifecycle;
#[cfg(target_os = "none")]
pub mod profile;
#[cfg(target_os = "none")]
pub mod sched;
#[cfg(target_os = "none")]
pub mod syscalls;
#[cfg(target_os = "none")]
pub mod tls;

#[cfg(target_os = "none")]
pub use self::target::{abort, exit, exit_with};

#[cfg(target_os = "none")]
mod target {
    use crate::log::LineBuf;
    use crate::xen::abi::ShutdownReason;
    use crate::xen::{console, hypercall};
    use core::fmt::Write;

    /// Ends the guest with the program's exit status.
    pub fn exit(status: i32) -> ! {
        exit_with(status, ShutdownReason::Poweroff)
    }

    /// Ends the guest with the program's exit status, asking Xen for `reason` (poweroff, or
    /// reboot after the toolstack asked for one).
    pub fn exit_with(status: i32, reason: ShutdownReason) -> ! {
        let mut record = LineBuf::new();
        let _ = write!(record, "{status}");
        console::finish(record.as_bytes());
        hypercall::shutdown(reason);
    }

    /// Ends the guest as `std::process::abort` does: as a crash.
    pub fn abort() -> ! {
        console::finish(b"abort");
        hypercall::shutdown(ShutdownReason::Crash);
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let mut line = LineBuf::new();
        let _ = write!(line, "kernel panic: {info}");
        console::crash_line(line.as_bytes());
        console::finish(b"crash");
        hypercall::shutdown(ShutdownReason::Crash);
    }
}
