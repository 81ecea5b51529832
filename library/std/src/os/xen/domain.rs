//! The domain this program runs as: its id and name, and requests from the toolstack to shut
//! it down or reboot it.
//!
//! By default `xl shutdown` (or `xl reboot`) ends the program as a Linux process without a
//! SIGTERM handler ends: exit status 143, then the domain powers off (or reboots). A program
//! that wants to finish its work first calls [`shutdown_requests`] once; from then on the
//! requests come to it, and it ends the domain itself: `std::process::exit` powers it off,
//! [`reboot`] reboots it.

#![stable(feature = "xen_ext", since = "1.96.0")]

use crate::io;
use crate::string::String;
use crate::sys::abi;
use crate::time::Duration;

/// The domain's id.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn id() -> io::Result<u32> {
    let text = super::xenstore::read_string("domid")?;
    text.trim()
        .parse()
        .map_err(|_| io::const_error!(io::ErrorKind::InvalidData, "xenstore's domid is not a number"))
}

/// Bytes of memory the domain has (what `xl create` gave it, `memory =`).
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn memory_total() -> u64 {
    abi::xk_memory_total()
}

/// Bytes of the domain's memory in use now: every page the kernel has handed out or keeps
/// (the program's image, page tables, the heap as far as it has grown, thread stacks, socket
/// and device buffers). Memory the heap took and freed stays counted while the heap keeps it.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn memory_used() -> u64 {
    abi::xk_memory_used()
}

/// The domain's name, as the toolstack created it.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn name() -> io::Result<String> {
    super::xenstore::read_string("name")
}

/// What the toolstack asks for.
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownRequest {
    /// `xl shutdown`: end and power off.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    Poweroff,
    /// `xl reboot`: end and start again.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    Reboot,
}

/// The toolstack's requests, once the program has taken them over.
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Debug)]
pub struct ShutdownRequests {
    _private: (),
}

/// Takes over the toolstack's shutdown and reboot requests: they no longer end the program,
/// they come through the returned value instead. Fails with `Unsupported` without xenstore
/// (a guest booted as dom0).
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn shutdown_requests() -> io::Result<ShutdownRequests> {
    let ret = abi::xk_shutdown_subscribe();
    if ret < 0 { Err(super::error(ret as i64)) } else { Ok(ShutdownRequests { _private: () }) }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl ShutdownRequests {
    /// Waits for the next request.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn recv(&self) -> ShutdownRequest {
        loop {
            if let Some(request) = self.until(u64::MAX) {
                return request;
            }
        }
    }

    /// Waits at most `timeout` for the next request.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ShutdownRequest> {
        self.until(super::deadline(Some(timeout)))
    }

    /// Returns a request that has come, without waiting.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn try_recv(&self) -> Option<ShutdownRequest> {
        self.until(0)
    }

    fn until(&self, deadline: u64) -> Option<ShutdownRequest> {
        match abi::xk_shutdown_next(deadline) {
            0 => Some(ShutdownRequest::Poweroff),
            1 => Some(ShutdownRequest::Reboot),
            _ => None,
        }
    }
}

/// Ends the program with `status`, as `std::process::exit` does, but has Xen reboot the
/// domain instead of powering it off. Destructors of the running threads do not run.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn reboot(status: i32) -> ! {
    crate::rt::cleanup();
    abi::xk_exit_reboot(status)
}
