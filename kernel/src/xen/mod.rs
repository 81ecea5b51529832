//! Xen: its ABI, hypercalls and the devices the kernel drives.

pub mod abi;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod evtchn;
pub mod grant;
#[cfg(target_os = "none")]
pub mod hypercall;
pub mod xenbus;
pub mod xenstore;
