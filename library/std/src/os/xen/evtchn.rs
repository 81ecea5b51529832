//! Event channels: Xen's doorbells between domains (or within one).
//!
//! An [`EventChannel`] is one local port. Either it is allocated for another domain to bind
//! ([`EventChannel::alloc_unbound`]; publish its [`port`](EventChannel::port), usually in
//! xenstore), or it binds to a port another domain allocated
//! ([`EventChannel::bind_interdomain`]). [`notify`](EventChannel::notify) rings the other
//! end; [`wait`](EventChannel::wait) blocks the thread until this end has been rung. Events
//! are counted, not queued: several that come between two waits end one wait, and none is
//! lost, including one that came before the first wait. Xen marks a port bound with
//! `bind_interdomain` as signalled, in case the other end rang before the bind, so the first
//! wait on such a channel returns at once. Dropping the channel closes the port.

#![stable(feature = "xen_ext", since = "1.96.0")]

use crate::io;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sys::abi;
use crate::time::Duration;

/// A local event channel port owned by the program.
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Debug)]
pub struct EventChannel {
    port: u32,
    /// The port's event count when it was last waited on.
    seen: AtomicU32,
}

fn port_of(ret: i64) -> io::Result<EventChannel> {
    if ret < 0 {
        return Err(super::error(ret));
    }
    // The kernel counts a new port's events from 0.
    Ok(EventChannel { port: ret as u32, seen: AtomicU32::new(0) })
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl EventChannel {
    /// Allocates a port that domain `remote_domid` may bind to.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn alloc_unbound(remote_domid: u32) -> io::Result<EventChannel> {
        port_of(abi::xk_evtchn_alloc_unbound(remote_domid))
    }

    /// Binds a local port to port `remote_port` that domain `remote_domid` allocated.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn bind_interdomain(remote_domid: u32, remote_port: u32) -> io::Result<EventChannel> {
        port_of(abi::xk_evtchn_bind_interdomain(remote_domid, remote_port))
    }

    /// The local port number.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Signals the other end.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn notify(&self) -> io::Result<()> {
        let ret = abi::xk_evtchn_notify(self.port);
        if ret < 0 { Err(super::error(ret as i64)) } else { Ok(()) }
    }

    /// Waits until an event has come since the last wait returned (or since the channel was
    /// made).
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn wait(&self) -> io::Result<()> {
        self.wait_until(u64::MAX).map(drop)
    }

    /// As [`EventChannel::wait`], for at most `timeout`; `Ok(false)` when none came.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<bool> {
        match self.wait_until(super::deadline(Some(timeout))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn wait_until(&self, deadline: u64) -> io::Result<()> {
        let seen = self.seen.load(Ordering::Acquire);
        let ret = abi::xk_evtchn_wait(self.port, seen, deadline);
        if ret < 0 {
            return Err(super::error(ret));
        }
        self.seen.store(ret as u32, Ordering::Release);
        Ok(())
    }

    /// Holds back events (they stay pending) until [`EventChannel::unmask`].
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn mask(&self) -> io::Result<()> {
        let ret = abi::xk_evtchn_set_mask(self.port, 1);
        if ret < 0 { Err(super::error(ret as i64)) } else { Ok(()) }
    }

    /// Lets events through again; one that came while masked is delivered now.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn unmask(&self) -> io::Result<()> {
        let ret = abi::xk_evtchn_set_mask(self.port, 0);
        if ret < 0 { Err(super::error(ret as i64)) } else { Ok(()) }
    }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Drop for EventChannel {
    fn drop(&mut self) {
        let _ = abi::xk_evtchn_close(self.port);
    }
}
