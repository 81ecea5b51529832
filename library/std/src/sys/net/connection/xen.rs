//! `TcpStream`, `TcpListener` and `UdpSocket` on Xen: sockets of the kernel's TCP/IP stack
//! (smoltcp over the guest's vif and a loopback interface), reached through the `xk_sock_*`
//! calls of the project's `docs/abi.md`.
//!
//! The kernel takes a deadline on every call that may wait; timeouts and non-blocking mode
//! live here and become that deadline (0 for non-blocking). Errors are Linux's errno values,
//! so programs see the same `io::ErrorKind`s as on Linux.

use crate::fmt;
use crate::io::{self, BorrowedCursor, IoSlice, IoSliceMut};
use crate::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs,
};
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sys::pal::abi::{self, XkSockAddr};
use crate::time::Duration;

const OPT_NODELAY: u32 = 1;
const OPT_TTL: u32 = 2;
const OPT_ERROR: u32 = 3;
const OPT_LINGER: u32 = 4;
const PEEK: u32 = 1;
/// The backlog `TcpListener::bind` asks for, as std on Linux does.
const BACKLOG: u32 = 128;
const ENOENT: i64 = 2;
const EDESTADDRREQ: i32 = 89;

fn to_xk(addr: &SocketAddr) -> XkSockAddr {
    let mut out = XkSockAddr { port: addr.port(), ..Default::default() };
    match addr {
        SocketAddr::V4(a) => {
            out.family = 4;
            out.addr[..4].copy_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.family = 6;
            out.addr = a.ip().octets();
            out.flowinfo = a.flowinfo();
            out.scope_id = a.scope_id();
        }
    }
    out
}

fn from_xk(addr: &XkSockAddr) -> SocketAddr {
    if addr.family == 6 {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(addr.addr),
            addr.port,
            addr.flowinfo,
            addr.scope_id,
        ))
    } else {
        let a = addr.addr;
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a[0], a[1], a[2], a[3]), addr.port))
    }
}

fn cvt(ret: i64) -> io::Result<i64> {
    if ret < 0 { Err(io::Error::from_raw_os_error((-ret) as i32)) } else { Ok(ret) }
}

fn cvt_n(ret: isize) -> io::Result<usize> {
    cvt(ret as i64).map(|n| n as usize)
}

/// Timeouts and non-blocking mode, turned into a kernel deadline per call.
struct Timing {
    nonblocking: AtomicBool,
    /// Nanoseconds; 0 is none.
    read: AtomicU64,
    write: AtomicU64,
}

impl Timing {
    const fn new() -> Timing {
        Timing {
            nonblocking: AtomicBool::new(false),
            read: AtomicU64::new(0),
            write: AtomicU64::new(0),
        }
    }

    fn deadline(&self, timeout: &AtomicU64) -> u64 {
        if self.nonblocking.load(Ordering::Relaxed) {
            return 0;
        }
        match timeout.load(Ordering::Relaxed) {
            0 => u64::MAX,
            t => abi::xk_monotonic_ns().saturating_add(t),
        }
    }

    fn set(timeout: &AtomicU64, dur: Option<Duration>) -> io::Result<()> {
        let nanos = match dur {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(io::const_error!(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout"
                ));
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
        };
        timeout.store(nanos, Ordering::Relaxed);
        Ok(())
    }

    fn get(timeout: &AtomicU64) -> Option<Duration> {
        match timeout.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_nanos(t)),
        }
    }
}

/// A kernel socket handle, closed on drop.
struct Handle(u64);

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = abi::xk_sock_close(self.0);
    }
}

impl Handle {
    fn addr(&self, which: u32) -> io::Result<SocketAddr> {
        let mut out = XkSockAddr::default();
        // SAFETY: `out` is a live XkSockAddr.
        cvt(unsafe { abi::xk_sock_addr(self.0, which, &mut out) } as i64)?;
        Ok(from_xk(&out))
    }

    fn set_opt(&self, opt: u32, value: u64) -> io::Result<()> {
        cvt(abi::xk_sock_set_opt(self.0, opt, value) as i64).map(drop)
    }

    fn get_opt(&self, opt: u32) -> io::Result<u64> {
        cvt(abi::xk_sock_get_opt(self.0, opt)).map(|v| v as u64)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(match self.get_opt(OPT_ERROR)? {
            0 => None,
            e => Some(io::Error::from_raw_os_error(e as i32)),
        })
    }
}

impl Handle {
    /// Another holder of the same kernel socket, as `dup` gives on Linux.
    fn duplicate(&self) -> io::Result<Handle> {
        Ok(Handle(cvt(abi::xk_sock_dup(self.0))? as u64))
    }
}

/// Timeouts and non-blocking mode are the socket's, shared by its clones (as Linux keeps them
/// on the socket and the open file).
pub struct TcpStream {
    handle: Handle,
    timing: Arc<Timing>,
}

impl TcpStream {
    fn connect_one(addr: &SocketAddr, deadline: u64) -> io::Result<TcpStream> {
        let xk = to_xk(addr);
        // SAFETY: `xk` is a live XkSockAddr.
        let h = cvt(unsafe { abi::xk_sock_tcp_connect(&xk, deadline) })?;
        Ok(TcpStream { handle: Handle(h as u64), timing: Arc::new(Timing::new()) })
    }

    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        super::each_addr(addr, |a| TcpStream::connect_one(a, u64::MAX))
    }

    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::const_error!(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout"
            ));
        }
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        TcpStream::connect_one(addr, abi::xk_monotonic_ns().saturating_add(nanos))
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Timing::set(&self.timing.read, t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Timing::set(&self.timing.write, t)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Timing::get(&self.timing.read))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Timing::get(&self.timing.write))
    }

    fn recv(&self, buf: &mut [u8], flags: u32) -> io::Result<usize> {
        let deadline = self.timing.deadline(&self.timing.read);
        // SAFETY: `buf` is valid for writes of its length.
        cvt_n(unsafe {
            abi::xk_sock_recv(self.handle.0, buf.as_mut_ptr(), buf.len(), flags, deadline)
        })
    }

    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf, PEEK)
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf, 0)
    }

    pub fn read_buf(&self, mut cursor: BorrowedCursor<'_>) -> io::Result<()> {
        let deadline = self.timing.deadline(&self.timing.read);
        // SAFETY: the kernel only writes to the cursor's unfilled part, at most its capacity,
        // and never reads it; nothing uninitialised is read here.
        let n = cvt_n(unsafe {
            abi::xk_sock_recv(self.handle.0, cursor.as_mut().as_mut_ptr().cast(), cursor.capacity(), 0, deadline)
        })?;
        // SAFETY: the kernel wrote (initialised) the first `n` bytes.
        unsafe { cursor.advance(n) };
        Ok(())
    }

    pub fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        crate::io::default_read_vectored(|b| self.read(b), bufs)
    }

    pub fn is_read_vectored(&self) -> bool {
        false
    }

    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let deadline = self.timing.deadline(&self.timing.write);
        // SAFETY: `buf` is valid for reads of its length.
        cvt_n(unsafe { abi::xk_sock_send(self.handle.0, buf.as_ptr(), buf.len(), deadline) })
    }

    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        crate::io::default_write_vectored(|b| self.write(b), bufs)
    }

    pub fn is_write_vectored(&self) -> bool {
        false
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.handle.addr(1)
    }

    pub fn socket_addr(&self) -> io::Result<SocketAddr> {
        self.handle.addr(0)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => 0,
            Shutdown::Write => 1,
            Shutdown::Both => 2,
        };
        cvt(abi::xk_sock_shutdown(self.handle.0, how) as i64).map(drop)
    }

    pub fn duplicate(&self) -> io::Result<TcpStream> {
        Ok(TcpStream { handle: self.handle.duplicate()?, timing: self.timing.clone() })
    }

    /// Whole seconds, as Linux keeps `SO_LINGER` (a fraction is dropped).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let value = linger.map_or(0, |d| d.as_secs().min(i32::MAX as u64) + 1);
        self.handle.set_opt(OPT_LINGER, value)
    }

    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.handle.get_opt(OPT_LINGER)?.checked_sub(1).map(Duration::from_secs))
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.handle.set_opt(OPT_NODELAY, nodelay as u64)
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.handle.get_opt(OPT_NODELAY)? != 0)
    }

    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.handle.set_opt(OPT_TTL, ttl as u64)
    }

    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.handle.get_opt(OPT_TTL)? as u32)
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.handle.take_error()
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.timing.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(a) = self.socket_addr() {
            d.field("addr", &a);
        }
        if let Ok(p) = self.peer_addr() {
            d.field("peer", &p);
        }
        d.field("handle", &self.handle.0).finish()
    }
}

pub struct TcpListener {
    handle: Handle,
    nonblocking: Arc<AtomicBool>,
}

impl TcpListener {
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        super::each_addr(addr, |a| {
            let xk = to_xk(a);
            // SAFETY: `xk` is a live XkSockAddr.
            let h = cvt(unsafe { abi::xk_sock_tcp_listen(&xk, BACKLOG) })?;
            Ok(TcpListener {
                handle: Handle(h as u64),
                nonblocking: Arc::new(AtomicBool::new(false)),
            })
        })
    }

    pub fn socket_addr(&self) -> io::Result<SocketAddr> {
        self.handle.addr(0)
    }

    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let deadline = if self.nonblocking.load(Ordering::Relaxed) { 0 } else { u64::MAX };
        let mut peer = XkSockAddr::default();
        // SAFETY: `peer` is a live XkSockAddr.
        let h = cvt(unsafe { abi::xk_sock_tcp_accept(self.handle.0, &mut peer, deadline) })?;
        Ok((
            TcpStream { handle: Handle(h as u64), timing: Arc::new(Timing::new()) },
            from_xk(&peer),
        ))
    }

    pub fn duplicate(&self) -> io::Result<TcpListener> {
        Ok(TcpListener { handle: self.handle.duplicate()?, nonblocking: self.nonblocking.clone() })
    }

    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.handle.set_opt(OPT_TTL, ttl as u64)
    }

    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.handle.get_opt(OPT_TTL)? as u32)
    }

    pub fn set_only_v6(&self, _: bool) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn only_v6(&self) -> io::Result<bool> {
        Ok(false)
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.handle.take_error()
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(a) = self.socket_addr() {
            d.field("addr", &a);
        }
        d.field("handle", &self.handle.0).finish()
    }
}

pub struct UdpSocket {
    handle: Handle,
    timing: Arc<Timing>,
}

impl UdpSocket {
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        super::each_addr(addr, |a| {
            let xk = to_xk(a);
            // SAFETY: `xk` is a live XkSockAddr.
            let h = cvt(unsafe { abi::xk_sock_udp_bind(&xk) })?;
            Ok(UdpSocket { handle: Handle(h as u64), timing: Arc::new(Timing::new()) })
        })
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.handle.addr(1)
    }

    pub fn socket_addr(&self) -> io::Result<SocketAddr> {
        self.handle.addr(0)
    }

    fn recv_with(&self, buf: &mut [u8], flags: u32) -> io::Result<(usize, SocketAddr)> {
        let deadline = self.timing.deadline(&self.timing.read);
        let mut from = XkSockAddr::default();
        // SAFETY: `buf` is valid for writes of its length, `from` is a live XkSockAddr.
        let n = cvt_n(unsafe {
            abi::xk_sock_udp_recv_from(
                self.handle.0,
                buf.as_mut_ptr(),
                buf.len(),
                flags,
                &mut from,
                deadline,
            )
        })?;
        Ok((n, from_xk(&from)))
    }

    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_with(buf, 0)
    }

    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_with(buf, PEEK)
    }

    pub fn send_to(&self, buf: &[u8], dst: &SocketAddr) -> io::Result<usize> {
        let deadline = self.timing.deadline(&self.timing.write);
        let xk = to_xk(dst);
        // SAFETY: `buf` is valid for reads of its length, `xk` is a live XkSockAddr.
        cvt_n(unsafe {
            abi::xk_sock_udp_send_to(self.handle.0, buf.as_ptr(), buf.len(), &xk, deadline)
        })
    }

    pub fn duplicate(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket { handle: self.handle.duplicate()?, timing: self.timing.clone() })
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Timing::set(&self.timing.read, t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Timing::set(&self.timing.write, t)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Timing::get(&self.timing.read))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Timing::get(&self.timing.write))
    }

    pub fn set_broadcast(&self, _: bool) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn broadcast(&self) -> io::Result<bool> {
        Ok(false)
    }

    pub fn set_multicast_loop_v4(&self, _: bool) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        crate::sys::unsupported()
    }

    pub fn set_multicast_ttl_v4(&self, _: u32) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        crate::sys::unsupported()
    }

    pub fn set_multicast_loop_v6(&self, _: bool) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        crate::sys::unsupported()
    }

    pub fn join_multicast_v4(&self, _: &Ipv4Addr, _: &Ipv4Addr) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn join_multicast_v6(&self, _: &Ipv6Addr, _: u32) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn leave_multicast_v4(&self, _: &Ipv4Addr, _: &Ipv4Addr) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn leave_multicast_v6(&self, _: &Ipv6Addr, _: u32) -> io::Result<()> {
        crate::sys::unsupported()
    }

    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.handle.set_opt(OPT_TTL, ttl as u64)
    }

    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.handle.get_opt(OPT_TTL)? as u32)
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.handle.take_error()
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.timing.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.peek_from(buf).map(|(n, _)| n)
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        // Linux: sending on an unconnected socket without an address is EDESTADDRREQ.
        let peer = self.peer_addr().map_err(|_| io::Error::from_raw_os_error(EDESTADDRREQ))?;
        self.send_to(buf, &peer)
    }

    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        super::each_addr(addr, |a| {
            let xk = to_xk(a);
            // SAFETY: `xk` is a live XkSockAddr.
            cvt(unsafe { abi::xk_sock_udp_connect(self.handle.0, &xk) } as i64).map(drop)
        })
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(a) = self.socket_addr() {
            d.field("addr", &a);
        }
        d.field("handle", &self.handle.0).finish()
    }
}

pub struct LookupHost(crate::vec::IntoIter<SocketAddr>);

impl Iterator for LookupHost {
    type Item = SocketAddr;
    fn next(&mut self) -> Option<SocketAddr> {
        self.0.next()
    }
}

/// Resolves `host`: an IP literal as it is, `localhost` and other names through the kernel
/// (DNS to the server of `xen.dns` or DHCP).
pub fn lookup_host(host: &str, port: u16) -> io::Result<LookupHost> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(LookupHost(vec![SocketAddr::new(ip, port)].into_iter()));
    }
    let mut found = [XkSockAddr::default(); 8];
    // FIXME: a fixed 10 s for a name lookup; Linux's resolver retries for about as long.
    let deadline = abi::xk_monotonic_ns().saturating_add(10_000_000_000);
    // SAFETY: `host` is valid for reads of its length, `found` for writes of its entries.
    let n = unsafe {
        abi::xk_sock_lookup(host.as_ptr(), host.len(), found.as_mut_ptr(), found.len(), deadline)
    };
    if n as i64 == -ENOENT || n as i64 == -110 {
        return Err(io::const_error!(
            io::ErrorKind::Uncategorized,
            "failed to lookup address information: Name or service not known"
        ));
    }
    let n = cvt_n(n)?;
    let mut addrs: crate::vec::Vec<SocketAddr> = found[..n].iter().map(from_xk).collect();
    for a in addrs.iter_mut() {
        a.set_port(port);
    }
    Ok(LookupHost(addrs.into_iter()))
}
